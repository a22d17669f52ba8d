//! hello: the smallest program with an address space of its own. It greets,
//! signals the notification in slot 1 of its table with the bits its parent
//! passed, and exits.
#![no_std]
#![no_main]

rt::entry!(main);

/// Where the parent puts a notification capability for the answer.
const ANSWER: u64 = 1;

fn main(args: rt::StartArgs) -> ! {
    let [bits, _, _] = args.0;
    rt::println!("hello: running in an address space of my own");
    let _ = rt::ipc::signal(ANSWER, bits);
    rt::sys::thread_exit()
}
