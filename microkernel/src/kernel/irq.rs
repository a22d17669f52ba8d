//! Interrupt lines: bound to a notification, masked when they fire, and
//! unmasked by the handler's acknowledgement.

use abi::cap::{ObjectKind, Rights};
use abi::syscall::SysError;

use crate::arch;

use super::Kernel;

impl Kernel {
    /// `IrqBind(irq_line, notification, bits)`.
    pub fn irq_bind(&mut self, t: u16, line_slot: u64, ntfn_slot: u64, bits: u64) -> Result<u64, SysError> {
        let line = self.lookup_as(t, line_slot, ObjectKind::IrqLine, Rights::WRITE)?.obj;
        let ntfn = self.lookup_as(t, ntfn_slot, ObjectKind::Notification, Rights::WRITE)?.obj;
        if bits == 0 {
            return Err(SysError::BadArgument);
        }
        self.hold(ntfn);
        let irq = self.irq_lines.get_mut(line.index, line.generation).ok_or(SysError::ObjectDeleted)?;
        let previous = irq.target.replace((ntfn, bits));
        let (pin, mode) = (irq.pin, irq.mode);
        if let Some((old, _)) = previous {
            self.drop_ref(old);
        }
        arch::irq_route(pin, mode, false);
        Ok(0)
    }

    /// `IrqAck(irq_line)`: unmask a line that fired.
    pub fn irq_ack(&mut self, t: u16, line_slot: u64) -> Result<u64, SysError> {
        let line = self.lookup_as(t, line_slot, ObjectKind::IrqLine, Rights::WRITE)?.obj;
        let irq = self.irq_lines.get(line.index, line.generation).ok_or(SysError::ObjectDeleted)?;
        if irq.target.is_none() {
            return Err(SysError::BadState);
        }
        arch::irq_route(irq.pin, irq.mode, false);
        Ok(0)
    }

    /// Pin `pin` fired: mask it and signal its notification.
    pub fn irq(&mut self, pin: u32) {
        let bound = self.irq_lines.iter().find(|(_, line)| line.pin == pin).map(|(_, line)| (line.mode, line.target));
        let Some((mode, target)) = bound else { return };
        arch::irq_route(pin, mode, true);
        if let Some((ntfn, bits)) = target {
            crate::capture::emit(crate::capture::category::NOTIFY, || trace::Record {
                endpoint: u32::from(ntfn.index),
                badge: bits,
                ..trace::Record::empty(trace::Kind::NotifySignal)
            });
            let _ = self.notify(ntfn, bits);
        }
    }
}
