/*
 * The Linux baseline of `cargo xtask bench fork --linux KERNEL`: the loop
 * of servers/apps/src/forkbench.rs (fork, the child writes W of the
 * parent's P resident pages and exits, the parent waits), run as /init of
 * an initramfs. It prints one line per shape in the guest forkbench's
 * format (`fork pages=P child_writes=W rounds=R mean_ns=.. min_ns=..`) and
 * powers off. The round count and the shapes come as init's arguments
 * (`ROUNDS P,W P,W ...`, after `--` on the kernel command line).
 *
 * Like the guest's, the child stays on the parent's CPU: the process is
 * pinned to CPU 0, and children inherit that. Under `-icount shift=0`
 * CLOCK_MONOTONIC advances one nanosecond per guest instruction, so the
 * nanoseconds are instructions.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/reboot.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Writes one word into each of the first `pages` pages. */
static void touch(volatile uint64_t *region, long pages, uint64_t value)
{
	for (long page = 0; page < pages; page++)
		region[page * (PAGE / sizeof(uint64_t))] = value;
}

/* One fork whose child writes `writes` pages and exits: its nanoseconds,
 * or 0 if it failed. */
static uint64_t fork_once(volatile uint64_t *region, long writes)
{
	uint64_t start = now_ns();
	pid_t pid = fork();
	if (pid == 0) {
		touch(region, writes, 2);
		_exit(0);
	}
	int status = 0;
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return 0;
	return now_ns() - start;
}

/* One shape: its line, or a line saying why there is none. */
static void shape(long pages, long writes, long rounds)
{
	volatile uint64_t *region = NULL;
	if (pages > 0) {
		region = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (region == MAP_FAILED) {
			printf("forkbench: mmap of %ld pages failed\n", pages);
			return;
		}
		touch(region, pages, 1);
	}
	/* Warm-up: the first fork of a shape pays for first-touch costs. */
	fork_once(region, writes);
	uint64_t total = 0, min = UINT64_MAX;
	for (long round = 0; round < rounds; round++) {
		uint64_t ns = fork_once(region, writes);
		if (ns == 0) {
			printf("forkbench: fork failed\n");
			return;
		}
		total += ns;
		if (ns < min)
			min = ns;
	}
	printf("fork pages=%ld child_writes=%ld rounds=%ld mean_ns=%llu min_ns=%llu\n", pages, writes, rounds,
	       (unsigned long long)(total / (uint64_t)rounds), (unsigned long long)min);
	if (region)
		munmap((void *)region, pages * PAGE);
}

int main(int argc, char **argv)
{
	long rounds = argc > 1 ? atol(argv[1]) : 0;
	setvbuf(stdout, NULL, _IOLBF, 0);
	cpu_set_t one;
	CPU_ZERO(&one);
	CPU_SET(0, &one);
	if (rounds < 1)
		printf("forkbench: no round count\n");
	else if (sched_setaffinity(0, sizeof(one), &one) != 0)
		printf("forkbench: could not pin to CPU 0\n");
	else
		for (int i = 2; i < argc; i++) {
			long pages = -1, writes = -1;
			if (sscanf(argv[i], "%ld,%ld", &pages, &writes) == 2 && pages >= 0 && writes >= 0 && writes <= pages)
				shape(pages, writes, rounds);
			else
				printf("forkbench: bad shape `%s`\n", argv[i]);
		}
	printf("[linux-forkbench] done\n");
	fflush(stdout);
	reboot(RB_POWER_OFF);
	return 0;
}
