//! Deferred single-lock manager: the FTL OS design, the project's default strategy.
//!
//! A frame is *owned* (one mapping, no counter) or *shared* (a counter, where 1 means one
//! owner is left). Process servers ([`Client`]) buffer their updates; the memory server's
//! [`Manager`] applies them in batches under one lock:
//!
//! - Forking an owned frame turns it shared with count 2 directly in the table, with no
//!   message: the owner is the only one who can touch an owned entry.
//! - Forking a shared frame queues an increment; [`Client::commit`] applies the queued
//!   increments in one batch before the fork returns (a blocking lock: the fork must not
//!   return before its increments count).
//! - A copy-on-write fault calls [`Client::try_remove_unique`]: a counter observed at 1 means
//!   the caller holds the only reference, so the entry becomes owned again and the frame is
//!   written in place.
//! - Releasing an owned frame frees it at once (the count-1 shortcut on release): the owner
//!   holds the only reference, so a compare-and-swap from owned to free needs no message and
//!   no lock.
//! - Decrements of shared frames wait in the client's buffer. At `batch` entries the client
//!   tries the lock (a spin try-lock: if the manager is busy the client keeps buffering); a
//!   full buffer (twice `batch`) waits for the lock. Idle points and exits flush.
//! - A counter that reaches zero frees the frame: whoever applied the batch reports it,
//!   after releasing the manager's lock (FTL OS drops it before taking the allocator's, so
//!   frees never lengthen the critical section every core waits on).
//!
//! **Ordering rule** (the seed's): a decrement is never applied before its increment. A
//! client's increments are applied before its decrements in every batch, and increments are
//! committed synchronously at fork, before the new reference can reach anyone else; so every
//! decrement the manager sees belongs to a reference whose increment already counts.
//!
//! **Why zero is safe:** the table entry is the count minus the buffered decrements, never
//! less, so it reaches 0 only after the last reference's decrement was applied, once, under
//! the lock. An owned entry has no buffered decrement and no queued increment (it became
//! owned at creation, or when it was observed at 1 with the caller's reference the last),
//! and only its one holder touches it, so the release shortcut frees it exactly once. **Why unique is safe:** buffered decrements only make the entry larger, never
//! smaller, so observing 1 proves there is no other reference (the price: false "shared"
//! answers, the avoidable copies FTL OS measured).
//!
//! Costs: 8 bytes per object plus per-client buffers; one compare-and-swap on the frame's
//! entry per fork of an owned frame and per release (which frees an owned frame and fails
//! on a shared one), no other atomic on the decrement path except the flush; one lock
//! acquisition per batch, serialising all cores' flushes, with the frees reported outside.

use crate::layout::{PerCore, Planner, Span, claim};
use crate::strategy::RefCount;
use crate::sync::Ordering::{AcqRel, Acquire, Relaxed, Release};
use crate::sync::spin;
use crate::{Config, LayoutError, Word, Words};

/// Entry value of an owned frame. Shared entries hold their count; free ones hold 0.
const OWNED: u64 = 1 << 63;

/// Frees [`Manager::apply`] collects under the lock before it drops the lock to report them.
const FREED_GROUP: usize = 16;

/// Where the manager's table and lock lie in a region.
#[derive(Clone, Copy, Debug)]
struct ManagerPlan {
    table: Span,
    lock: Span,
}

impl ManagerPlan {
    fn plan(p: &mut Planner, n_objects: usize) -> Self {
        ManagerPlan { table: p.shared(n_objects, 1), lock: p.shared(1, 1) }
    }
}

/// A manager's tables seen through a borrowed region.
#[derive(Clone, Copy)]
struct Mgr<'m> {
    mem: &'m [Word],
    plan: ManagerPlan,
}

impl<'m> Mgr<'m> {
    #[inline]
    fn entry(&self, obj: u32) -> &'m Word {
        self.plan.table.at(self.mem, obj as usize, 0)
    }

    #[inline]
    fn try_lock(&self) -> bool {
        self.plan.lock.at(self.mem, 0, 0).compare_exchange(0, 1, Acquire, Relaxed).is_ok()
    }

    #[inline]
    fn lock(&self) {
        while !self.try_lock() {
            spin();
        }
    }

    #[inline]
    fn unlock(&self) {
        self.plan.lock.at(self.mem, 0, 0).store(0, Release);
    }

    /// Under the lock. An owned entry can meet an increment only when its owner committed
    /// a fork after taking the frame back; it then becomes shared by two.
    #[inline]
    fn apply_inc(&self, obj: u32) {
        let e = self.entry(obj);
        let _ = e.fetch_update(AcqRel, Acquire, |v| Some(if v == OWNED { 2 } else { v + 1 }));
    }

    /// Under the lock. A decrement of an owned entry is its owner's last reference. True if
    /// it freed the frame: the caller reports it once the lock is released.
    #[inline]
    fn apply_dec(&self, obj: u32) -> bool {
        let e = self.entry(obj);
        let old = e.fetch_update(AcqRel, Acquire, |v| Some(if v == OWNED { 0 } else { v - 1 }));
        matches!(old, Ok(1) | Ok(OWNED))
    }

    /// The release shortcut: the owner of an owned frame drops the only reference, so the
    /// frame is free at once, with no buffer and no lock. False if the frame is shared.
    #[inline]
    fn release_owned(&self, obj: u32) -> bool {
        self.entry(obj).compare_exchange(OWNED, 0, AcqRel, Relaxed).is_ok()
    }

    fn try_remove_unique(&self, obj: u32) -> bool {
        let e = self.entry(obj);
        match e.load(Acquire) {
            OWNED => true,
            1 => e.compare_exchange(1, OWNED, AcqRel, Relaxed).is_ok(),
            _ => false,
        }
    }
}

/// The memory server's side: the table of every frame and the single lock.
pub struct Manager<M: Words> {
    mem: M,
    plan: ManagerPlan,
}

impl<M: Words> Manager<M> {
    /// Words of region a manager for `n_objects` frames needs.
    pub fn words_needed(n_objects: usize) -> usize {
        let mut p = Planner::new();
        ManagerPlan::plan(&mut p, n_objects);
        p.total()
    }

    /// Places a new manager over a zeroed region (every frame free).
    pub fn new_in(mem: M, n_objects: usize) -> Result<Self, LayoutError> {
        Config::new(n_objects, 1).validate()?;
        let mut p = Planner::new();
        let plan = ManagerPlan::plan(&mut p, n_objects);
        claim(&mem, p.total())?;
        Ok(Manager { mem, plan })
    }

    /// A second view of a live manager's region (a process server mapping the table): no
    /// zero check, the tables are already in use.
    pub fn attach(mem: M, n_objects: usize) -> Result<Self, LayoutError> {
        Config::new(n_objects, 1).validate()?;
        let mut p = Planner::new();
        let plan = ManagerPlan::plan(&mut p, n_objects);
        if mem.len() < p.total() {
            return Err(LayoutError::TooSmall { needed: p.total(), given: mem.len() });
        }
        Ok(Manager { mem, plan })
    }

    #[inline]
    fn view(&self) -> Mgr<'_> {
        Mgr { mem: &self.mem, plan: self.plan }
    }

    /// Hands the free frame `obj` to one owner.
    pub fn create(&self, obj: u32) {
        self.view().entry(obj).store(OWNED, Release);
    }

    /// Applies one client's batch (received over IPC), increments first, under the lock,
    /// and reports the frees after releasing it (in groups of `FREED_GROUP`, dropping the
    /// lock between groups), as FTL OS releases the manager's lock before it takes the
    /// allocator's.
    pub fn apply(&self, incs: &[u32], decs: &[u32], freed: &mut impl FnMut(u32)) {
        let m = self.view();
        m.lock();
        incs.iter().for_each(|&o| m.apply_inc(o));
        let mut group = [0u32; FREED_GROUP];
        let mut n = 0;
        for &o in decs {
            if m.apply_dec(o) {
                group[n] = o;
                n += 1;
                if n == FREED_GROUP {
                    m.unlock();
                    group.iter().for_each(|&f| freed(f));
                    n = 0;
                    m.lock();
                }
            }
        }
        m.unlock();
        group[..n].iter().for_each(|&f| freed(f));
    }

    /// The entry of `obj`: `None` if free, `Some(None)` if owned, `Some(Some(n))` if shared
    /// with a (not yet decremented) count of `n`.
    pub fn entry(&self, obj: u32) -> Option<Option<u64>> {
        match self.view().entry(obj).load(Acquire) {
            0 => None,
            OWNED => Some(None),
            n => Some(Some(n)),
        }
    }
}

/// Where one client's buffers lie: `[n_incs, n_decs, incs[cap], decs[cap]]`.
#[derive(Clone, Copy, Debug)]
struct Buffers {
    area: PerCore,
    cap: usize,
    batch: usize,
}

impl Buffers {
    fn plan(p: &mut Planner, n_clients: usize, batch: usize) -> Self {
        let cap = 2 * batch;
        Buffers { area: p.per_core(n_clients, 1, 2 + 2 * cap), cap, batch }
    }
}

/// One client's buffers seen through a borrowed region. Only the client's thread uses it.
struct Buf<'c> {
    mem: &'c [Word],
    b: Buffers,
    client: usize,
}

const N_INCS: usize = 0;
const N_DECS: usize = 1;

impl<'c> Buf<'c> {
    #[inline]
    fn word(&self, field: usize) -> &'c Word {
        self.b.area.at(self.mem, self.client, 0, field)
    }

    #[inline]
    fn len(&self, which: usize) -> usize {
        self.word(which).load(Relaxed) as usize
    }

    #[inline]
    fn slot(&self, which: usize, i: usize) -> &'c Word {
        debug_assert!(i < self.b.cap);
        self.word(2 + which * self.b.cap + i)
    }

    #[inline]
    fn push(&self, which: usize, obj: u32) {
        let n = self.len(which);
        self.slot(which, n).store(obj as u64, Relaxed);
        self.word(which).store(n as u64 + 1, Relaxed);
    }

    #[inline]
    fn share(&self, m: Mgr<'_>, obj: u32) {
        if m.entry(obj).compare_exchange(OWNED, 2, AcqRel, Relaxed).is_ok() {
            return;
        }
        if self.len(N_INCS) == self.b.cap {
            self.commit(m);
        }
        self.push(N_INCS, obj);
    }

    /// Applies the queued increments under the (blocking) lock.
    fn commit(&self, m: Mgr<'_>) {
        if self.len(N_INCS) == 0 {
            return;
        }
        m.lock();
        self.apply_incs(m);
        m.unlock();
    }

    fn apply_incs(&self, m: Mgr<'_>) {
        for i in 0..self.len(N_INCS) {
            m.apply_inc(self.slot(N_INCS, i).load(Relaxed) as u32);
        }
        self.word(N_INCS).store(0, Relaxed);
    }

    /// Under the lock: increments first, then decrements (the ordering rule). Empties the
    /// buffers and moves the frames it freed to the front of the decrement buffer; returns
    /// how many, for [`Buf::report`] to hand out after the lock is released.
    fn apply_all(&self, m: Mgr<'_>) -> usize {
        self.apply_incs(m);
        let mut n_freed = 0;
        for i in 0..self.len(N_DECS) {
            let obj = self.slot(N_DECS, i).load(Relaxed);
            if m.apply_dec(obj as u32) {
                self.slot(N_DECS, n_freed).store(obj, Relaxed);
                n_freed += 1;
            }
        }
        self.word(N_DECS).store(0, Relaxed);
        n_freed
    }

    /// Outside the lock: reports the `n_freed` frames [`Buf::apply_all`] left at the front of
    /// the (now empty) decrement buffer. Only this client writes there.
    fn report(&self, n_freed: usize, freed: &mut impl FnMut(u32)) {
        for i in 0..n_freed {
            freed(self.slot(N_DECS, i).load(Relaxed) as u32);
        }
    }

    #[inline]
    fn dec(&self, m: Mgr<'_>, obj: u32, freed: &mut impl FnMut(u32)) {
        if m.release_owned(obj) {
            freed(obj);
            return;
        }
        if self.len(N_DECS) == self.b.cap {
            self.flush(m, freed);
        }
        self.push(N_DECS, obj);
        if self.len(N_DECS) >= self.b.batch {
            self.try_flush(m, freed);
        }
    }

    #[inline]
    fn try_flush(&self, m: Mgr<'_>, freed: &mut impl FnMut(u32)) -> bool {
        if !m.try_lock() {
            return false;
        }
        let n_freed = self.apply_all(m);
        m.unlock();
        self.report(n_freed, freed);
        true
    }

    fn flush(&self, m: Mgr<'_>, freed: &mut impl FnMut(u32)) {
        if self.len(N_INCS) + self.len(N_DECS) == 0 {
            return;
        }
        m.lock();
        let n_freed = self.apply_all(m);
        m.unlock();
        self.report(n_freed, freed);
    }

    fn try_remove_unique(&self, m: Mgr<'_>, obj: u32) -> bool {
        // A fork in progress must count before the caller can be "unique".
        self.commit(m);
        m.try_remove_unique(obj)
    }

    fn pending_decs(&self, obj: u32) -> u64 {
        (0..self.len(N_DECS)).filter(|&i| self.slot(N_DECS, i).load(Relaxed) == obj as u64).count() as u64
    }
}

/// A process server's side: its increment batch and decrement buffer, in its own region.
pub struct Client<M: Words> {
    mem: M,
    b: Buffers,
}

impl<M: Words> Client<M> {
    /// Words of region a client with flush threshold `batch` needs.
    pub fn words_needed(batch: usize) -> usize {
        let mut p = Planner::new();
        Buffers::plan(&mut p, 1, batch);
        p.total()
    }

    /// Places a client over a zeroed region; it tries to flush at `batch` decrements.
    pub fn new_in(mem: M, batch: usize) -> Result<Self, LayoutError> {
        if batch == 0 {
            return Err(LayoutError::BadTunable);
        }
        let mut p = Planner::new();
        let b = Buffers::plan(&mut p, 1, batch);
        claim(&mem, p.total())?;
        Ok(Client { mem, b })
    }

    #[inline]
    fn buf(&self) -> Buf<'_> {
        Buf { mem: &self.mem, b: self.b, client: 0 }
    }

    /// A fork shares `obj`: owned becomes shared by two at once, shared queues an increment.
    pub fn share<N: Words>(&self, m: &Manager<N>, obj: u32) {
        self.buf().share(m.view(), obj)
    }

    /// Applies the queued increments; call before the fork returns.
    pub fn commit<N: Words>(&self, m: &Manager<N>) {
        self.buf().commit(m.view())
    }

    /// Buffers a decrement; flushes at the threshold if the lock is free.
    pub fn dec<N: Words>(&self, m: &Manager<N>, obj: u32, freed: &mut impl FnMut(u32)) {
        self.buf().dec(m.view(), obj, freed)
    }

    /// Applies everything buffered if the lock is free; false if it was busy.
    pub fn try_flush<N: Words>(&self, m: &Manager<N>, freed: &mut impl FnMut(u32)) -> bool {
        self.buf().try_flush(m.view(), freed)
    }

    /// Applies everything buffered, waiting for the lock.
    pub fn flush<N: Words>(&self, m: &Manager<N>, freed: &mut impl FnMut(u32)) {
        self.buf().flush(m.view(), freed)
    }

    /// The copy-on-write fast path: true if the caller's reference is the only one, and the
    /// frame is then owned.
    pub fn try_remove_unique<N: Words>(&self, m: &Manager<N>, obj: u32) -> bool {
        self.buf().try_remove_unique(m.view(), obj)
    }

    /// Queued increments and buffered decrements.
    pub fn pending(&self) -> (usize, usize) {
        let b = self.buf();
        (b.len(N_INCS), b.len(N_DECS))
    }
}

/// Manager and one client per core in one region, behind the common trait.
pub struct Deferred<M: Words> {
    mem: M,
    cfg: Config,
    mgr: ManagerPlan,
    clients: Buffers,
}

fn plan(cfg: &Config) -> (Planner, ManagerPlan, Buffers) {
    let mut p = Planner::new();
    let mgr = ManagerPlan::plan(&mut p, cfg.n_objects);
    let clients = Buffers::plan(&mut p, cfg.n_cores, cfg.batch);
    (p, mgr, clients)
}

impl<M: Words> Deferred<M> {
    #[inline]
    fn mgr(&self) -> Mgr<'_> {
        Mgr { mem: &self.mem, plan: self.mgr }
    }

    #[inline]
    fn client(&self, core: usize) -> Buf<'_> {
        Buf { mem: &self.mem, b: self.clients, client: core }
    }
}

impl<M: Words> RefCount for Deferred<M> {
    type Mem = M;
    const NAME: &'static str = "deferred";
    const SETTLE_ROUNDS: usize = 1;

    fn words_needed(cfg: &Config) -> usize {
        plan(cfg).0.total()
    }

    fn new_in(mem: M, cfg: Config) -> Result<Self, LayoutError> {
        cfg.validate()?;
        let (p, mgr, clients) = plan(&cfg);
        claim(&mem, p.total())?;
        Ok(Deferred { mem, cfg, mgr, clients })
    }

    fn config(&self) -> &Config {
        &self.cfg
    }

    fn create(&self, _core: usize, obj: u32) {
        self.mgr().entry(obj).store(OWNED, Release);
    }

    fn inc(&self, core: usize, obj: u32) {
        let c = self.client(core);
        c.share(self.mgr(), obj);
        c.commit(self.mgr());
    }

    fn inc_batch(&self, core: usize, objs: &[u32]) {
        let c = self.client(core);
        objs.iter().for_each(|&o| c.share(self.mgr(), o));
        c.commit(self.mgr());
    }

    #[inline]
    fn dec(&self, core: usize, obj: u32, freed: &mut impl FnMut(u32)) {
        self.client(core).dec(self.mgr(), obj, freed)
    }

    fn try_remove_unique(&self, core: usize, obj: u32) -> bool {
        self.client(core).try_remove_unique(self.mgr(), obj)
    }

    fn quiescent(&self, core: usize, freed: &mut impl FnMut(u32)) {
        self.client(core).flush(self.mgr(), freed)
    }

    fn read_exact(&self, obj: u32) -> u64 {
        let applied = match self.mgr().entry(obj).load(Acquire) {
            OWNED => 1,
            n => n,
        };
        applied - (0..self.cfg.n_cores).map(|c| self.client(c).pending_decs(obj)).sum::<u64>()
    }
}

#[cfg(all(test, not(loom), feature = "alloc"))]
mod tests {
    use super::*;
    use crate::Region;

    fn pair(n: usize, batch: usize) -> (Manager<Region>, Client<Region>) {
        let m = Manager::new_in(Region::zeroed(Manager::<Region>::words_needed(n)), n).unwrap();
        let c = Client::new_in(Region::zeroed(Client::<Region>::words_needed(batch)), batch).unwrap();
        (m, c)
    }

    #[test]
    fn releasing_an_owned_frame_frees_it_at_once() {
        let (m, c) = pair(4, 4);
        m.create(2);
        let mut freed = Vec::new();
        c.dec(&m, 2, &mut |o| freed.push(o));
        assert_eq!(freed, [2], "no buffer, no flush");
        assert_eq!((c.pending(), m.entry(2)), ((0, 0), None));
        m.create(3);
        c.share(&m, 3);
        c.dec(&m, 3, &mut |o| freed.push(o));
        assert_eq!(c.pending(), (0, 1), "a shared frame's release is buffered");
    }

    #[test]
    fn frees_are_reported_after_the_lock_is_released() {
        let (m, c) = pair(40, 64);
        let freed = std::cell::RefCell::new(Vec::new());
        let mut report = |o| {
            assert!(m.view().try_lock(), "frame {o} reported under the manager's lock");
            m.view().unlock();
            freed.borrow_mut().push(o);
        };
        let all: Vec<u32> = (0..40).collect();
        for &o in &all {
            m.create(o);
            c.share(&m, o);
            c.dec(&m, o, &mut report);
            c.dec(&m, o, &mut report);
        }
        c.flush(&m, &mut report);
        assert_eq!(freed.take(), all);
        for &o in &all {
            m.create(o);
            c.share(&m, o);
        }
        m.apply(&[], &all, &mut report);
        assert!(freed.borrow().is_empty(), "two references each");
        m.apply(&[], &all, &mut report);
        assert_eq!(freed.take(), all, "every group reported, outside the lock");
    }

    #[test]
    fn owned_fork_needs_no_batch() {
        let (m, c) = pair(4, 4);
        m.create(1);
        assert_eq!(m.entry(1), Some(None));
        c.share(&m, 1);
        assert_eq!(c.pending(), (0, 0));
        assert_eq!(m.entry(1), Some(Some(2)));
        c.share(&m, 1);
        assert_eq!(c.pending(), (1, 0), "a shared frame queues its increment");
        c.commit(&m);
        assert_eq!(m.entry(1), Some(Some(3)));
    }

    #[test]
    fn unique_only_when_the_count_shows_one() {
        let (m, c) = pair(4, 4);
        let mut freed = Vec::new();
        m.create(0);
        c.share(&m, 0);
        assert!(!c.try_remove_unique(&m, 0));
        c.dec(&m, 0, &mut |o| freed.push(o));
        assert!(!c.try_remove_unique(&m, 0), "the decrement is still buffered");
        c.flush(&m, &mut |o| freed.push(o));
        assert!(c.try_remove_unique(&m, 0));
        assert_eq!(m.entry(0), Some(None), "taken back: owned again");
        c.dec(&m, 0, &mut |o| freed.push(o));
        c.flush(&m, &mut |o| freed.push(o));
        assert_eq!(freed, vec![0]);
        assert_eq!(m.entry(0), None);
    }

    #[test]
    fn threshold_flush_and_busy_manager() {
        let (m, c) = pair(8, 2);
        let mut freed = Vec::new();
        for o in 0..4 {
            m.create(o);
            c.share(&m, o);
        }
        // Hold the lock as another flusher would: the client keeps buffering.
        let view = m.view();
        assert!(view.try_lock());
        for o in 0..4 {
            c.dec(&m, o, &mut |x| freed.push(x));
        }
        assert_eq!(c.pending(), (0, 4), "busy lock: buffered up to capacity");
        assert!(!c.try_flush(&m, &mut |x| freed.push(x)));
        view.unlock();
        c.dec(&m, 0, &mut |x| freed.push(x));
        assert_eq!(c.pending(), (0, 1), "a full buffer flushed before taking one more");
        assert!(freed.is_empty());
        assert_eq!(m.entry(1), Some(Some(1)));
        assert!(c.try_flush(&m, &mut |x| freed.push(x)));
        assert_eq!(freed, vec![0]);
    }

    #[test]
    fn increments_apply_before_decrements() {
        let (m, c) = pair(2, 8);
        let mut freed = Vec::new();
        m.create(0);
        c.share(&m, 0); // shared, 2
        c.share(&m, 0); // queued +1 (3 references)
        c.dec(&m, 0, &mut |x| freed.push(x));
        c.dec(&m, 0, &mut |x| freed.push(x));
        // Another client's batch arrives over IPC with the third decrement.
        m.apply(&[], &[0], &mut |x| freed.push(x));
        assert!(freed.is_empty());
        c.flush(&m, &mut |x| freed.push(x));
        assert_eq!(freed, vec![0]);
    }

    #[test]
    fn attach_sees_the_same_table() {
        let r = Region::zeroed(Manager::<Region>::words_needed(4));
        let m = Manager::new_in(&*r, 4).unwrap();
        m.create(3);
        let view = Manager::attach(&*r, 4).unwrap();
        assert_eq!(view.entry(3), Some(None));
        assert!(matches!(Manager::attach(&r[..1], 4), Err(LayoutError::TooSmall { .. })));
    }
}
