//! The register half of `fork`: the caller's callee-saved registers go on
//! its stack, and the child thread starts on a copy of that stack at a label
//! that restores them and returns 0, as if `fork` had returned there.

use core::arch::global_asm;

// `rt_fork(cpu) -> i64`: saves rbp, rbx, r12..r15, then calls
// `rt_fork_request(stack, resume, cpu)` with `stack` the stack pointer
// after the saves and `resume` the child's label. The child starts at
// `rt_fork_child` with rsp = `stack`, on the copy-on-write copy of the
// parent's stack as it was during the call.
global_asm!(
    ".global rt_fork",
    "rt_fork:",
    "push rbp",
    "push rbx",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "mov rdx, rdi",
    "mov rdi, rsp",
    "lea rsi, [rip + rt_fork_child]",
    // Six pushes left rsp 8 bytes off the 16-byte alignment of a call.
    "sub rsp, 8",
    "call {request}",
    "add rsp, 8",
    "jmp 2f",
    "rt_fork_child:",
    "xor eax, eax",
    "2:",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbx",
    "pop rbp",
    "ret",
    request = sym crate::proc::fork_request,
);

unsafe extern "C" {
    /// Forks the calling process (see `proc::fork`): the child's pid in the
    /// parent, 0 in the child, a negative `ProtoError` index on failure.
    pub fn rt_fork(cpu: u64) -> i64;
}
