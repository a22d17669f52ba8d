//! Kernel memory: the physical frames the kernel itself uses. User memory is
//! not the kernel's business; it only maps what user space hands it.

pub mod frame;
