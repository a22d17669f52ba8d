//! The system-call dispatcher: decodes the number and hands each call to
//! the file that owns it. Every argument is checked there; a bad one gets an
//! error code in the caller's `rax`, never a kernel panic.

use abi::cap::{ObjectKind, Rights, privilege};
use abi::syscall::{DEBUG_WRITE_MAX, SysError, Sysnum};

use crate::object::thread::Thread;
use crate::object::{CSpace, Endpoint, Notification, ObjRef, Space};
use crate::{arch, capture, mm::frame, uaccess};

use super::Kernel;

impl Kernel {
    /// Runs system call `number` for thread `t` on `cpu`. Results land in
    /// `t`'s saved registers; a blocking call leaves them for its waker.
    pub fn syscall(&mut self, cpu: usize, t: u16, number: u64, args: [u64; 6]) {
        let sysnum = match Sysnum::try_from(number) {
            Ok(sysnum) => sysnum,
            Err(error) => return self.set_result(t, Err(error)),
        };
        let result = match sysnum {
            Sysnum::DebugWrite => self.privileged(t, privilege::CONSOLE).and_then(|()| debug_write(args[0], args[1])),
            Sysnum::ThreadExit => return self.thread_exit(t),
            Sysnum::Yield => {
                self.cpus[cpu].slice_over = true;
                Ok(0)
            }
            Sysnum::KernelInfo => self.privileged(t, privilege::KERNEL_INFO).and_then(|()| self.kernel_info(args[0])),
            Sysnum::CapCopy => self.cap_derive(t, args[0], args[1], args[2], Rights::ALL, None),
            Sysnum::CapMint => match u8::try_from(args[3]) {
                Ok(rights) => self.cap_derive(t, args[0], args[1], args[2], Rights(rights), Some(args[4])),
                Err(_) => Err(SysError::BadArgument),
            },
            Sysnum::CapMove => self.cap_move(t, args[0], args[1]),
            Sysnum::CapDelete => self.cap_delete(t, args[0]),
            Sysnum::CapRevoke => match self.cap_revoke(t, args[0]) {
                Ok(Some(deleted)) => Ok(deleted),
                // Restarted: the thread's registers still hold the call.
                Ok(None) => return,
                Err(error) => Err(error),
            },
            Sysnum::CapIdentify => self.lookup(t, args[0]).map(|cap| {
                let size = self.object_size(cap.obj);
                if let Some(thread) = self.threads.at_mut(t) {
                    thread.ctx.rsi = cap.badge;
                    thread.ctx.r10 = size;
                }
                cap.obj.kind as u64 | u64::from(cap.rights.0) << 8
            }),
            Sysnum::Create => self.create(t, args[0], args[1]),
            Sysnum::Allowance => self.allowance(t, args[0], args[1]),
            Sysnum::TableRestrict => self.table_restrict(t, args[0], args[1]),
            Sysnum::ThreadConfigure => self.thread_configure(t, args),
            Sysnum::ThreadStart => self.thread_start(t, args),
            Sysnum::ThreadSuspend => self.thread_suspend(t, args[0]),
            Sysnum::ThreadResume => self.thread_resume(t, args[0]),
            Sysnum::ThreadSetAffinity => self.thread_set_affinity(t, args[0], args[1]),
            Sysnum::ThreadSetPriority => self.thread_set_priority(t, args[0], args[1]),
            Sysnum::ThreadState => self.thread_state(t, args[0]),
            Sysnum::Send | Sysnum::NbSend | Sysnum::Call => {
                return match self.lookup_as(t, args[0], ObjectKind::Endpoint, Rights::NONE) {
                    Ok(cap) => self.send(t, cap, sysnum == Sysnum::Call, sysnum != Sysnum::NbSend),
                    Err(error) => self.set_result(t, Err(error)),
                };
            }
            Sysnum::Recv | Sysnum::NbRecv => {
                return match self.lookup_as(t, args[0], ObjectKind::Endpoint, Rights::NONE) {
                    Ok(cap) => self.recv(t, cap, sysnum == Sysnum::Recv),
                    Err(error) => self.set_result(t, Err(error)),
                };
            }
            Sysnum::Reply => self.reply(t, args[0], false),
            Sysnum::ReplySave => self.reply_save(t, args[0]),
            Sysnum::ReplyRecv => {
                let cap = match self.lookup_as(t, args[0], ObjectKind::Endpoint, Rights::NONE) {
                    Ok(cap) => cap,
                    Err(error) => return self.set_result(t, Err(error)),
                };
                // A missing caller is not an error here: the first ReplyRecv
                // of a server loop has nobody to answer.
                let _ = self.reply(t, abi::syscall::IMPLICIT_REPLY, true);
                return self.recv(t, cap, true);
            }
            Sysnum::Signal => {
                self.lookup_as(t, args[0], ObjectKind::Notification, Rights::NONE).and_then(|cap| self.signal(t, cap, args[1]))
            }
            Sysnum::Wait | Sysnum::Poll => {
                return match self.lookup_as(t, args[0], ObjectKind::Notification, Rights::NONE) {
                    Ok(cap) => self.wait(t, cap, sysnum == Sysnum::Wait),
                    Err(error) => self.set_result(t, Err(error)),
                };
            }
            Sysnum::MapBatch => self.map_batch(t, args),
            Sysnum::Unmap => self.unmap(t, args),
            Sysnum::Protect => self.protect(t, args),
            Sysnum::Query => self.query(t, args),
            Sysnum::ShareCow => self.share_cow(t, args),
            Sysnum::PhysRangeCarve => self.phys_range_carve(t, args),
            Sysnum::Remap => self.remap(t, args),
            Sysnum::CowArm => self.cow_arm(t, args),
            Sysnum::PortIn => self.port_in(t, args),
            Sysnum::PortOut => self.port_out(t, args),
            Sysnum::IrqBind => self.irq_bind(t, args[0], args[1], args[2]),
            Sysnum::IrqAck => self.irq_ack(t, args[0]),
            Sysnum::TraceControl => self.trace_control(t, args[0], args[1], args[2]),
            Sysnum::TraceName => self.trace_name(t, args[0], args[1], args[2]),
        };
        self.set_result(t, result);
    }

    /// `Create(kind, dst)`: a new object, from its bounded pool and the
    /// caller's table's allowance, with a capability carrying every right.
    fn create(&mut self, t: u16, kind: u64, dst: u64) -> Result<u64, SysError> {
        let kind = ObjectKind::from_raw(kind).filter(|k| k.creatable()).ok_or(SysError::BadArgument)?;
        let cspace = self.cspace_of(t)?;
        self.lookup(t, dst).map_or(Ok(()), |_| Err(SysError::SlotOccupied))?;
        let payer = self.charge(t)?;
        let (index, generation) = self.new_object(kind, cspace).inspect_err(|_| self.refund(payer, 1))?;
        let obj = ObjRef { kind, index, generation };
        self.set_payer(obj, payer);
        if let Err(error) = self.insert_cap(cspace, dst, obj, Rights::ALL, 0, 0) {
            self.drop_ref(obj);
            return Err(error);
        }
        Ok(0)
    }

    /// A new object of a creatable `kind` in its pool; a table gets the
    /// privileges of its `creator`'s.
    fn new_object(&mut self, kind: ObjectKind, creator: ObjRef) -> Result<(u16, u32), SysError> {
        Ok(match kind {
            ObjectKind::Thread => self.threads.insert(Thread::new())?,
            ObjectKind::Endpoint => self.endpoints.insert(Endpoint::default())?,
            ObjectKind::Notification => self.notifications.insert(Notification::default())?,
            ObjectKind::CSpace => {
                let privileges = self.privileges_of(creator);
                self.cspaces.insert(CSpace::new(0, privileges))?
            }
            ObjectKind::AddressSpace => {
                let root = arch::paging::Root::new_user(arch::kernel_space(), &mut frame::alloc_zeroed)
                    .map_err(|_| SysError::OutOfKernelMemory)?;
                self.spaces.insert(Space { root, table_pages: 1, cow: None }).inspect_err(|_| {
                    let _ = frame::free(root.0);
                })?
            }
            ObjectKind::IoPorts | ObjectKind::PhysRange | ObjectKind::Reply | ObjectKind::IrqLine => {
                return Err(SysError::BadArgument);
            }
        })
    }

    /// What `CapIdentify` reports as an object's size: frames of a
    /// PhysRange, ports of an I/O port range, 0 for the rest.
    fn object_size(&self, obj: ObjRef) -> u64 {
        match obj.kind {
            ObjectKind::PhysRange => self.phys_ranges.get(obj.index, obj.generation).map_or(0, |r| r.frames),
            ObjectKind::IoPorts => self.io_ports.get(obj.index, obj.generation).map_or(0, |p| u64::from(p.count)),
            ObjectKind::AddressSpace => self.spaces.get(obj.index, obj.generation).map_or(0, |s| s.table_pages as u64),
            _ => 0,
        }
    }

    fn kernel_info(&self, what: u64) -> Result<u64, SysError> {
        let pack = |used: usize, capacity: usize| used as u64 | (capacity as u64) << 32;
        match what {
            abi::syscall::KERNEL_INFO_FREE_FRAMES => return Ok((frame::counts().0 + self.orphans()) as u64),
            abi::syscall::KERNEL_INFO_CPUS => return Ok(arch::cpu_count() as u64),
            abi::syscall::KERNEL_INFO_KILLS => return Ok(self.kills),
            abi::syscall::KERNEL_INFO_TSC_HZ => return Ok(arch::time::tsc_hz()),
            abi::syscall::KERNEL_INFO_SPACE_SWITCHES => return Ok(arch::tlb_totals().switches),
            abi::syscall::KERNEL_INFO_TLB_FLUSHES => return Ok(arch::tlb_totals().flushes),
            abi::syscall::KERNEL_INFO_PAGE_FLUSHES => return Ok(arch::tlb_totals().page_flushes),
            abi::syscall::KERNEL_INFO_SHOOTDOWN_IPIS => return Ok(arch::tlb_totals().ipis),
            abi::syscall::KERNEL_INFO_ORPHANED_ROOTS => return Ok(self.orphans() as u64),
            abi::syscall::KERNEL_INFO_USABLE_FRAMES => return Ok(crate::mm::frame::counts().1 as u64),
            _ => {}
        }
        if let Some(total) = super::lock::total(what) {
            return Ok(total);
        }
        if let Some(path) = what.checked_sub(abi::syscall::KERNEL_INFO_IPC_PATH).and_then(|p| self.ipc_paths.get(p as usize)) {
            return Ok(*path);
        }
        Ok(match ObjectKind::from_raw(what).ok_or(SysError::BadArgument)? {
            ObjectKind::Thread => pack(self.threads.used(), self.threads.capacity()),
            ObjectKind::AddressSpace => pack(self.spaces.used(), self.spaces.capacity()),
            ObjectKind::CSpace => pack(self.cspaces.used(), self.cspaces.capacity()),
            ObjectKind::Endpoint => pack(self.endpoints.used(), self.endpoints.capacity()),
            ObjectKind::Notification => pack(self.notifications.used(), self.notifications.capacity()),
            ObjectKind::PhysRange => pack(self.phys_ranges.used(), self.phys_ranges.capacity()),
            ObjectKind::Reply => pack(self.replies.used(), self.replies.capacity()),
            ObjectKind::IrqLine => pack(self.irq_lines.used(), self.irq_lines.capacity()),
            ObjectKind::IoPorts => pack(self.io_ports.used(), self.io_ports.capacity()),
        })
    }

    fn trace_control(&self, t: u16, console: u64, op: u64, arg: u64) -> Result<u64, SysError> {
        self.lookup_as(t, console, ObjectKind::IoPorts, Rights::WRITE)?;
        match op {
            abi::syscall::TRACE_SET_MASK => {
                let mask = u32::try_from(arg).map_err(|_| SysError::BadArgument)?;
                capture::configure(mask, capture::mode());
            }
            abi::syscall::TRACE_SET_MODE => {
                let mode = capture::Mode::from_raw(arg).ok_or(SysError::BadArgument)?;
                let previous = capture::mode();
                capture::configure(capture::mask(), mode);
                return Ok(previous as u64);
            }
            abi::syscall::TRACE_FLUSH => return Ok(capture::drain(u64::MAX)),
            _ => return Err(SysError::BadArgument),
        }
        Ok(0)
    }

    fn trace_name(&self, t: u16, slot: u64, ptr: u64, len: u64) -> Result<u64, SysError> {
        self.privileged(t, privilege::TRACE)?;
        let cap = self.lookup(t, slot)?;
        if !cap.rights.contains(Rights::WRITE) {
            return Err(SysError::NoRight);
        }
        let kind = match cap.obj.kind {
            ObjectKind::Thread => trace::NameKind::Thread,
            ObjectKind::Endpoint | ObjectKind::Notification => trace::NameKind::Endpoint,
            _ => return Err(SysError::WrongType),
        };
        if len > abi::syscall::TRACE_NAME_MAX as u64 {
            return Err(SysError::BadLength);
        }
        let mut buffer = [0u8; abi::syscall::TRACE_NAME_MAX];
        let bytes = &mut buffer[..len as usize];
        uaccess::copy_from_user(ptr, bytes)?;
        let name = core::str::from_utf8(bytes).map_err(|_| SysError::BadArgument)?;
        capture::name(trace::NameEntry::new(kind, u32::from(cap.obj.index), cap.obj.generation, name));
        Ok(0)
    }

    fn ports(&self, t: u16, slot: u64, port: u64, width: u64, rights: Rights) -> Result<u16, SysError> {
        let cap = self.lookup_as(t, slot, ObjectKind::IoPorts, rights)?;
        let ports = self.io_ports.get(cap.obj.index, cap.obj.generation).ok_or(SysError::ObjectDeleted)?;
        let (first, end) = (u64::from(ports.first), u64::from(ports.first) + u64::from(ports.count));
        let fits = port.checked_add(width).is_some_and(|last| port >= first && last <= end);
        if !matches!(width, 1 | 2 | 4) || !fits {
            return Err(SysError::BadArgument);
        }
        Ok(port as u16)
    }

    fn port_in(&self, t: u16, args: [u64; 6]) -> Result<u64, SysError> {
        let port = self.ports(t, args[0], args[1], args[2], Rights::READ)?;
        Ok(arch::port_in(port, args[2] as u8))
    }

    fn port_out(&self, t: u16, args: [u64; 6]) -> Result<u64, SysError> {
        let port = self.ports(t, args[0], args[1], args[2], Rights::WRITE)?;
        if port == abi::exit::DEBUG_EXIT_PORT {
            // The write ends the machine: not while another CPU is half-way
            // through sending a trace frame.
            crate::capture::with_port_idle(|| arch::port_out(port, args[2] as u8, args[3]));
        } else {
            arch::port_out(port, args[2] as u8, args[3]);
        }
        Ok(0)
    }
}

fn debug_write(ptr: u64, len: u64) -> Result<u64, SysError> {
    if len > DEBUG_WRITE_MAX as u64 {
        return Err(SysError::BadLength);
    }
    let mut buffer = [0u8; DEBUG_WRITE_MAX];
    let bytes = &mut buffer[..len as usize];
    uaccess::copy_from_user(ptr, bytes)?;
    for chunk in bytes.utf8_chunks() {
        crate::print!("{}", chunk.valid());
        if !chunk.invalid().is_empty() {
            crate::print!("\u{FFFD}");
        }
    }
    Ok(len)
}
