//! Scheduling: per-CPU ready queues by priority (round robin within one),
//! preemption at timer ticks and on wake-ups, migration by affinity, and the
//! switch that loads the next context into the exit frame.

use crate::arch::{self, UserContext};
use crate::object::Queue;
use crate::object::pool::Pool;
use crate::object::thread::{State, Thread};

use super::Kernel;

/// Appends `t` to `queue`.
pub fn push(threads: &mut Pool<Thread>, queue: &mut Queue, t: u16) {
    if let Some(thread) = threads.at_mut(t) {
        thread.next = None;
    }
    append(threads, queue, t);
}

/// Appends `t`, whose link is already clear, to `queue` (inlined: the IPC
/// fast path's ReplyRecv calls it, having cleared the link itself).
#[inline(always)]
pub fn append(threads: &mut Pool<Thread>, queue: &mut Queue, t: u16) {
    match queue.tail {
        Some(tail) => {
            if let Some(last) = threads.at_mut(tail) {
                last.next = Some(t);
            }
        }
        None => queue.head = Some(t),
    }
    queue.tail = Some(t);
}

/// Takes the first thread off `queue`.
pub fn pop(threads: &mut Pool<Thread>, queue: &mut Queue) -> Option<u16> {
    let head = queue.head?;
    let next = threads.at_mut(head).and_then(|t| t.next.take());
    queue.head = next;
    if next.is_none() {
        queue.tail = None;
    }
    Some(head)
}

/// Unlinks `t` from `queue`; false if it was not there.
pub fn unlink(threads: &mut Pool<Thread>, queue: &mut Queue, t: u16) -> bool {
    let mut previous: Option<u16> = None;
    let mut cursor = queue.head;
    while let Some(index) = cursor {
        let next = threads.at(index).and_then(|thread| thread.next);
        if index == t {
            match previous {
                Some(p) => {
                    if let Some(prev) = threads.at_mut(p) {
                        prev.next = next;
                    }
                }
                None => queue.head = next,
            }
            if queue.tail == Some(t) {
                queue.tail = previous;
            }
            if let Some(thread) = threads.at_mut(t) {
                thread.next = None;
            }
            return true;
        }
        previous = cursor;
        cursor = next;
    }
    false
}

impl Kernel {
    /// Puts `t` on its CPU's ready queue, and tells that CPU if it is not
    /// this one.
    pub fn make_ready(&mut self, t: u16) {
        let Some(thread) = self.threads.at_mut(t) else { return };
        thread.state = State::Ready;
        let (cpu, priority) = (usize::from(thread.cpu), usize::from(thread.priority));
        push(&mut self.threads, &mut self.cpus[cpu].ready[priority], t);
        self.cpus[cpu].ready_bits |= 1 << priority;
        if cpu != arch::cpu_index() {
            arch::send_resched(cpu);
        }
    }

    /// Wakes `t`, a partner of an IPC on this CPU. When it belongs here and
    /// outranks every ready thread, the next switch runs it directly (the
    /// direct hand-off: no ready queue, no IPI); otherwise it is made ready.
    pub fn wake(&mut self, t: u16) {
        let cpu = arch::cpu_index();
        let Some(thread) = self.threads.at(t) else { return };
        if usize::from(thread.cpu) == cpu && self.outranks_ready(cpu, thread.priority) && self.cpus[cpu].handoff.is_none() {
            if let Some(thread) = self.threads.at_mut(t) {
                thread.state = State::Ready;
            }
            self.cpus[cpu].handoff = Some(t);
        } else {
            self.make_ready(t);
        }
    }

    /// Takes `t` off its ready queue (or out of a pending hand-off).
    pub fn unready(&mut self, t: u16) {
        let Some(thread) = self.threads.at(t) else { return };
        if thread.state != State::Ready {
            return;
        }
        if let Some(cpu) = self.cpus.iter_mut().find(|cpu| cpu.handoff == Some(t)) {
            cpu.handoff = None;
            return;
        }
        let (cpu, priority) = (usize::from(thread.cpu), usize::from(thread.priority));
        let queue = &mut self.cpus[cpu].ready[priority];
        unlink(&mut self.threads, queue, t);
        if queue.head.is_none() {
            self.cpus[cpu].ready_bits &= !(1 << priority);
        }
    }

    fn highest_ready(&self, cpu: usize) -> Option<usize> {
        let bits = self.cpus[cpu].ready_bits;
        (bits != 0).then(|| 63 - bits.leading_zeros() as usize)
    }

    fn pop_highest(&mut self, cpu: usize) -> Option<u16> {
        let priority = self.highest_ready(cpu)?;
        let queue = &mut self.cpus[cpu].ready[priority];
        let t = pop(&mut self.threads, queue);
        if queue.head.is_none() {
            self.cpus[cpu].ready_bits &= !(1 << priority);
        }
        t
    }

    /// Chooses what CPU `cpu` runs next: the thread, or `None` for the
    /// idle context. Its address space is loaded, and its next `syscall`
    /// saves into its TCB.
    pub fn switch(&mut self, cpu: usize) -> Option<u16> {
        if let Some(handoff) = self.cpus[cpu].handoff.take() {
            self.take_handoff(cpu, handoff);
        }
        let slice_over = core::mem::take(&mut self.cpus[cpu].slice_over);
        let mut keep = None;
        if let Some(current) = self.cpus[cpu].current.take() {
            let (state, home, priority) = match self.threads.at(current) {
                Some(t) => (t.state, usize::from(t.cpu), usize::from(t.priority)),
                None => (State::Dead, cpu, 0),
            };
            self.reap_if_destroyed(current);
            if state == State::Running {
                let best = self.highest_ready(cpu);
                let preempted = best.is_some_and(|b| b > priority || (slice_over && b == priority));
                if home != cpu || preempted {
                    self.make_ready(current);
                } else {
                    keep = Some(current);
                }
            }
        }
        let next = keep.or_else(|| self.pop_highest(cpu));
        self.cpus[cpu].current = next;
        // The idle context keeps whatever space is loaded (`loaded.rs`); a
        // thread without one runs on the kernel's.
        if let Some(thread) = next.and_then(|t| self.threads.at_mut(t)) {
            thread.state = State::Running;
            arch::save_syscalls_into(&thread.ctx);
            arch::haltpoll_arm();
            let root = thread.root().unwrap_or_else(arch::kernel_space);
            self.load_space(cpu, root);
        }
        next
    }

    /// The context CPU `cpu` resumes after [`Kernel::switch`] chose `next`:
    /// the thread's saved registers, or a fresh idle context.
    pub fn context(&mut self, cpu: usize, next: Option<u16>) -> &UserContext {
        match next.and_then(|t| self.threads.at(t)) {
            Some(thread) => &thread.ctx,
            None => {
                self.cpus[cpu].idle = arch::idle_context();
                &self.cpus[cpu].idle
            }
        }
    }

    /// [`Kernel::switch`] for an entry that resumes through `frame` (an
    /// interrupt, a fault): the chosen context is copied into it.
    pub fn switch_into(&mut self, cpu: usize, frame: &mut UserContext) {
        let next = self.switch(cpu);
        *frame = *self.context(cpu, next);
    }

    /// Whether a thread of `priority` outranks every thread ready on `cpu`
    /// (so a wake-up would hand it the CPU directly).
    pub fn outranks_ready(&self, cpu: usize, priority: u8) -> bool {
        self.cpus[cpu].ready_bits >> priority == 0
    }

    /// Runs a handed-off thread now if it outranks the running one; else
    /// queues it.
    fn take_handoff(&mut self, cpu: usize, handoff: u16) {
        let Some(priority) = self.threads.at(handoff).filter(|t| t.state == State::Ready).map(|t| t.priority) else {
            return;
        };
        let running = self.cpus[cpu].current.filter(|&c| self.threads.at(c).is_some_and(|t| t.state == State::Running));
        match running {
            Some(c) if self.threads.at(c).is_some_and(|t| t.priority >= priority) => self.make_ready(handoff),
            Some(c) => {
                self.make_ready(c);
                self.run_now(cpu, handoff);
            }
            None => self.run_now(cpu, handoff),
        }
    }

    fn run_now(&mut self, cpu: usize, t: u16) {
        if let Some(previous) = self.cpus[cpu].current.replace(t) {
            self.reap_if_destroyed(previous);
        }
        if let Some(thread) = self.threads.at_mut(t) {
            thread.state = State::Running;
        }
    }

    /// A thread destroyed while it ran is freed once it is off its CPU.
    fn reap_if_destroyed(&mut self, t: u16) {
        let dead = self.threads.at(t).is_some_and(|thread| thread.state == State::Dead);
        if dead
            && self.threads.refs_at(t) == 0
            && let Some(generation) = self.threads.generation_of(t)
        {
            self.threads.remove(t, generation);
        }
    }
}
