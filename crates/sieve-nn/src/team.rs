//! Run-scoped worker team: the intra-op parallelism of one model run.
//!
//! Why: a batch-1 run of a small CNN is a chain of layers of 20-500 us each. Handing
//! every layer to rayon costs a wake-up of the other worker whenever it has gone to
//! sleep between layers (tens of microseconds on a VM), so the second core joined
//! late or not at all: MobileNet v2 ran only 1.24x faster on two threads than on one,
//! onnxruntime (whose pool spins) 1.9x.
//!
//! How: [`Model::run`](crate::Model::run) runs its layers on the calling thread and
//! spawns [`Team::help`] on the rayon pool; an idle worker picks it up and spins for
//! the length of the run, taking part in every parallel section the layers publish
//! through [`for_workers`] (and running other rayon work in between, via
//! `rayon::yield_now`). The publishing thread always takes part itself and claims any
//! worker slot nobody else has claimed yet, so a late or absent helper (the pool busy
//! with other runs) costs nothing but parallelism — never a wait. Running on the
//! caller (instead of handing the run to a pool worker, as before) also saves two
//! cross-thread wake-ups per run, which matter for sub-millisecond models.
//!
//! A helper whose run has finished waits [`GRACE`] for the next run before it gives
//! its worker back, so back-to-back runs keep their helper.
//!
//! Outside a run (tests, direct kernel calls) and for nested sections, [`for_workers`]
//! falls back to rayon.

use std::any::Any;
use std::cell::{Cell, UnsafeCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A section's body with its lifetime erased (see [`Team::run`]).
type Body = *const (dyn Fn(usize) + Sync + 'static);

/// Largest worker count of one section (the slot fields of the state word).
const MAX_WORKERS: usize = 0xffff;

/// Shared state of one run's team.
///
/// Protocol: the publisher writes the section's body, then the state word
/// `epoch << 32 | workers << 16 | claimed` (release). Anyone claims slot `claimed` by a
/// compare-and-swap of the whole word to `claimed + 1`, so a claim can only succeed
/// for the section the word describes, and only while it has unclaimed slots. Only
/// after a successful claim does a helper read the body: it stays valid until every
/// slot is done (the publisher waits for `done == workers` before it returns or
/// writes the next body).
pub(crate) struct Team {
    state: AtomicU64,
    /// The current section's body (written only while no slot is unfinished).
    body: UnsafeCell<Option<Body>>,
    /// Finished slots of the current section.
    done: AtomicUsize,
    /// The first panic of a slot of the current section, re-raised by the publisher.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    /// The run is over: helpers leave.
    finished: AtomicBool,
    /// The publishing thread is inside a section (nested sections run serially).
    busy: AtomicBool,
}

// SAFETY: `body` is written by the publisher only while no claimed slot is unfinished
// and read by a slot's runner only between its claim and its `done` increment (see the
// protocol above); everything else is atomic.
unsafe impl Sync for Team {}
// SAFETY: as for `Sync`: the raw body pointer is only dereferenced under that protocol,
// and the bodies themselves are `Sync`.
unsafe impl Send for Team {}

thread_local! {
    /// The team of the run executing on this thread, if any.
    static CURRENT: Cell<*const Team> = const { Cell::new(std::ptr::null()) };
}

impl Team {
    fn new() -> Team {
        Team {
            state: AtomicU64::new(0),
            body: UnsafeCell::new(None),
            done: AtomicUsize::new(0),
            panic: Mutex::new(None),
            finished: AtomicBool::new(false),
            busy: AtomicBool::new(false),
        }
    }

    /// Claims the next slot of the section in state word `s`: `Ok(slot)`, or `Err(true)`
    /// if the section has no unclaimed slot, `Err(false)` if the word changed meanwhile.
    fn try_claim(&self, s: u64) -> Result<usize, bool> {
        let claimed = (s & 0xffff) as usize;
        let workers = ((s >> 16) & 0xffff) as usize;
        if claimed >= workers {
            return Err(true);
        }
        self.state
            .compare_exchange(s, s + 1, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| claimed)
            .map_err(|_| false)
    }

    /// Runs a claimed slot of the current section.
    fn run_slot(&self, slot: usize) {
        // SAFETY: the slot was claimed, so the section is unfinished and its body (written
        // before the state word that announced it, which the claim acquired) is live
        // until our `done` increment below.
        let body = unsafe { *self.body.get() };
        if let Some(f) = body {
            // SAFETY: as above.
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| unsafe { (*f)(slot) })) {
                let mut first = self.panic.lock().unwrap_or_else(|e| e.into_inner());
                first.get_or_insert(p);
            }
        }
        self.done.fetch_add(1, Ordering::AcqRel);
    }

    /// The helper side: takes part in sections until the run finishes.
    fn help(&self) {
        let mut seen = 0u64;
        let mut spins = 0u32;
        while !self.finished.load(Ordering::Acquire) {
            let s = self.state.load(Ordering::Acquire);
            if s >> 32 != seen {
                match self.try_claim(s) {
                    Ok(slot) => {
                        self.run_slot(slot);
                        continue;
                    }
                    Err(false) => continue,
                    Err(true) => seen = s >> 32,
                }
            }
            idle_step(&mut spins);
        }
    }

    /// Publishes a section and takes part in it until every slot is done.
    fn run(&self, workers: usize, f: &(dyn Fn(usize) + Sync)) {
        debug_assert!(workers <= MAX_WORKERS);
        // SAFETY (lifetime erasure): the body is read only by runners of claimed slots of
        // this section, and this function returns only after all of them are done.
        let body: Body = unsafe {
            std::mem::transmute::<*const (dyn Fn(usize) + Sync + '_), Body>(f as *const _)
        };
        // SAFETY: the previous section is finished (every slot done), so nobody reads
        // the body now; the state store below publishes the write.
        unsafe { *self.body.get() = Some(body) };
        self.done.store(0, Ordering::Relaxed);
        let epoch = ((self.state.load(Ordering::Acquire) >> 32) + 1) & 0xffff_ffff;
        // Slot 0 is the publisher's, claimed in the announcement itself: the calling
        // thread runs slot 0 of every section and a helper starts at slot 1, so a
        // kernel that gives slot 0 the front of its items (see [`Ends`]) keeps the
        // same part of every tensor on the same core from layer to layer.
        self.state
            .store(epoch << 32 | (workers as u64) << 16 | 1, Ordering::Release);
        self.run_slot(0);
        loop {
            match self.try_claim(self.state.load(Ordering::Acquire)) {
                Ok(slot) => self.run_slot(slot),
                Err(false) => {}
                Err(true) => break,
            }
        }
        while self.done.load(Ordering::Acquire) < workers {
            std::hint::spin_loop();
        }
        let panic = self.panic.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(p) = panic {
            std::panic::resume_unwind(p);
        }
    }
}

/// Runs `body` (a model run) on the calling thread with a team: a helper job spawned on
/// the rayon pool spins beside it and takes part in its [`for_workers`] sections.
/// The helper is detached (it holds its own reference to the team), so the run never
/// waits for it to start or to leave: a helper that starts after the run has finished
/// returns at once. Single-threaded pools (and nested runs) just call `body`.
pub(crate) fn with_team<R>(body: impl FnOnce() -> R) -> R {
    if rayon::current_num_threads() < 2 || !CURRENT.with(|c| c.get().is_null()) {
        return body();
    }
    let team = Arc::new(Team::new());
    // Concurrent runs (a server's worker threads under load) already keep the cores busy:
    // only a run that has the pool to itself gets a helper, the others claim all their
    // slots themselves (the same code path, run serially) instead of adding spinning
    // threads to an oversubscribed machine.
    let active = ACTIVE_RUNS.fetch_add(1, Ordering::AcqRel) + 1;
    if active * 2 <= rayon::current_num_threads() || always_hire() {
        hire(Arc::clone(&team));
    }
    CURRENT.with(|c| c.set(Arc::as_ptr(&team)));
    // Whatever happens in `body`, the helper must be released.
    struct Release<'a>(&'a Team);
    impl Drop for Release<'_> {
        fn drop(&mut self) {
            CURRENT.with(|c| c.set(std::ptr::null()));
            self.0.finished.store(true, Ordering::Release);
            ACTIVE_RUNS.fetch_sub(1, Ordering::AcqRel);
        }
    }
    let _release = Release(&team);
    body()
}

/// One step of a helper's spin: every 256th runs other rayon work queued on the pool
/// (ops that still use rayon), the others are a pause.
fn idle_step(spins: &mut u32) {
    *spins = spins.wrapping_add(1);
    if spins.is_multiple_of(256) {
        let _ = rayon::yield_now();
    } else {
        std::hint::spin_loop();
    }
}

/// Model runs in progress (all threads).
static ACTIVE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cfg(test)]
thread_local! {
    /// Tests of the helper protocol hire a helper even while other tests' runs are in
    /// progress (the test harness runs tests concurrently).
    static ALWAYS_HIRE: Cell<bool> = const { Cell::new(false) };
}

#[cfg(test)]
fn always_hire() -> bool {
    ALWAYS_HIRE.with(|c| c.get())
}

#[cfg(not(test))]
fn always_hire() -> bool {
    false
}

/// How long a helper whose run has finished keeps spinning for the next run before it
/// gives its rayon worker back. Back-to-back runs (a benchmark loop, a busy server) then
/// find a helper already spinning instead of waking a sleeping worker (tens to
/// hundreds of microseconds on a VM, a large share of a sub-millisecond model).
const GRACE: std::time::Duration = std::time::Duration::from_millis(2);

/// Helpers waiting for a run, and a team handed to one of them.
struct Lobby {
    idle: usize,
    team: Option<Arc<Team>>,
}

static LOBBY: Mutex<Lobby> = Mutex::new(Lobby {
    idle: 0,
    team: None,
});
/// A team waits in the lobby (checked without the lock while spinning).
static LOBBY_FULL: AtomicBool = AtomicBool::new(false);

fn lobby() -> std::sync::MutexGuard<'static, Lobby> {
    LOBBY.lock().unwrap_or_else(|p| p.into_inner())
}

/// Gets a helper for `team`: an idle one from the lobby if there is one, else a new
/// rayon job.
fn hire(team: Arc<Team>) {
    {
        let mut l = lobby();
        if l.idle > 0 && l.team.is_none() {
            l.team = Some(team);
            LOBBY_FULL.store(true, Ordering::Release);
            return;
        }
    }
    rayon::spawn(move || helper_loop(team));
}

/// A helper job: serves `team`, then waits up to [`GRACE`] in the lobby for the next
/// run, and so on.
fn helper_loop(mut team: Arc<Team>) {
    loop {
        team.help();
        drop(team);
        lobby().idle += 1;
        let start = std::time::Instant::now();
        let mut spins = 0u32;
        let next = loop {
            let expired = start.elapsed() > GRACE;
            if LOBBY_FULL.load(Ordering::Acquire) || expired {
                let mut l = lobby();
                if let Some(t) = l.team.take() {
                    LOBBY_FULL.store(false, Ordering::Release);
                    l.idle -= 1;
                    break Some(t);
                }
                if expired {
                    l.idle -= 1;
                    break None;
                }
            }
            idle_step(&mut spins);
        };
        match next {
            Some(t) => team = t,
            None => return,
        }
    }
}

/// Runs `f(w)` for every worker slot `w < workers` in parallel and returns when all are
/// done: on the current run's team if there is one (see the module docs), else on
/// rayon. Every slot runs exactly once, on some thread; callers share work between
/// slots with their own atomic counter, so the number of threads that actually take
/// part does not matter for correctness.
pub(crate) fn for_workers(workers: usize, f: &(dyn Fn(usize) + Sync)) {
    if workers <= 1 {
        if workers == 1 {
            f(0);
        }
        return;
    }
    let team = CURRENT.with(|c| c.get());
    if !team.is_null() {
        // SAFETY: CURRENT points at a team that outlives the run executing on this
        // thread (`with_team` clears it before the team is dropped).
        let team = unsafe { &*team };
        if workers <= MAX_WORKERS && !team.busy.swap(true, Ordering::AcqRel) {
            struct Idle<'a>(&'a Team);
            impl Drop for Idle<'_> {
                fn drop(&mut self) {
                    self.0.busy.store(false, Ordering::Release);
                }
            }
            let _idle = Idle(team);
            team.run(workers, f);
            return;
        }
        // Nested in a section of this thread: run in order.
        (0..workers).for_each(f);
        return;
    }
    use rayon::prelude::*;
    (0..workers).into_par_iter().for_each(f);
}

/// Items `0..n` shared out between the slots of a [`for_workers`] section from both
/// ends: slot 0 (in a run, always the calling thread) takes them in order from the
/// front, every other slot from the back, until they meet. A kernel that numbers its
/// items in spatial order (row bands top to bottom) thus keeps the top part of every
/// tensor on the calling thread's core and the bottom part on the helper's, layer after
/// layer, while the meeting point still moves to balance the work. (With a shared
/// counter each layer read about half its input from the other core's L2; from both ends
/// MobileNet v2 runs 3% faster on two threads: docs/KERNELS.md "Session 19".)
///
/// `SIEVE_ENDS=0` makes every slot take from the front (for A/B measurements).
pub(crate) struct Ends {
    n: usize,
    /// Items taken from the front (low half) and from the back (high half).
    taken: AtomicU64,
    /// Every slot takes from the front (a plain shared counter).
    front_only: bool,
}

/// [`Ends`] hands out from both ends unless `SIEVE_ENDS=0`.
fn both_ends() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("SIEVE_ENDS").map_or(true, |v| v != "0"))
}

impl Ends {
    /// Up to this many items both ends share one atomic word.
    const MAX_ITEMS: usize = 1 << 31;

    pub(crate) fn new(n: usize) -> Ends {
        Ends {
            n,
            taken: AtomicU64::new(0),
            front_only: n >= Self::MAX_ITEMS || !both_ends(),
        }
    }

    /// Items `0..n` taken in order from the front by every slot: for item lists whose
    /// order is not spatial (measured: the direct convolution's channel-block-major
    /// items ran 4% slower on cifar10_quick from both ends).
    pub(crate) fn front(n: usize) -> Ends {
        Ends {
            front_only: true,
            ..Ends::new(n)
        }
    }

    /// The next item for `slot`, or `None` when every item is taken. Each item is
    /// handed out exactly once: every take is one atomic add, and the `k`-th take (in
    /// the word's order) is valid only while `k < n`, so the front's items and the back's
    /// never overlap.
    pub(crate) fn take(&self, slot: usize) -> Option<usize> {
        if self.front_only {
            // Also for too many items for the halves (the count still fits the u64).
            let f = self.taken.fetch_add(1, Ordering::Relaxed) as usize;
            return (f < self.n).then_some(f);
        }
        let back = slot != 0;
        let old = self
            .taken
            .fetch_add(if back { 1 << 32 } else { 1 }, Ordering::Relaxed);
        let (f, b) = ((old & 0xffff_ffff) as usize, (old >> 32) as usize);
        if f + b >= self.n {
            return None;
        }
        Some(if back { self.n - 1 - b } else { f })
    }
}

/// Raw output pointer shared by workers that write disjoint ranges.
#[derive(Clone, Copy)]
struct SharedMut(*mut f32);
// SAFETY: only used to hand out disjoint chunks of one `&mut [f32]` that outlives the
// parallel section (see `par_chunks_mut`).
unsafe impl Send for SharedMut {}
// SAFETY: as above.
unsafe impl Sync for SharedMut {}

/// `f(i, chunk)` for every `chunk`-float chunk `i` of `out` (the last may be shorter),
/// shared out between `threads` workers by an atomic counter.
pub(crate) fn par_chunks_mut(
    out: &mut [f32],
    chunk: usize,
    threads: usize,
    f: impl Fn(usize, &mut [f32]) + Sync,
) {
    let chunk = chunk.max(1);
    let count = out.len().div_ceil(chunk);
    let workers = threads.min(count);
    if workers <= 1 {
        out.chunks_mut(chunk).enumerate().for_each(|(i, c)| f(i, c));
        return;
    }
    let len = out.len();
    let base = SharedMut(out.as_mut_ptr());
    let next = AtomicUsize::new(0);
    for_workers(workers, &|_| loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= count {
            break;
        }
        let start = i * chunk;
        let n = chunk.min(len - start);
        let b = base;
        // SAFETY: chunk `i` is handed to exactly one worker (the counter), chunks are
        // disjoint and inside `out`, which is exclusively borrowed for this call.
        let c = unsafe { std::slice::from_raw_parts_mut(b.0.add(start), n) };
        f(i, c);
    });
}

#[cfg(test)]
#[allow(clippy::panic)]
mod tests {
    use super::*;

    fn pool(n: usize) -> rayon::ThreadPool {
        match rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .start_handler(|_| ALWAYS_HIRE.with(|c| c.set(true)))
            .build()
        {
            Ok(p) => p,
            Err(e) => panic!("thread pool: {e}"),
        }
    }

    #[test]
    fn every_slot_runs_once_inside_and_outside_a_team() {
        for threads in [1, 2, 3] {
            pool(threads).install(|| {
                for in_team in [false, true] {
                    let check = || {
                        for workers in [0, 1, 2, 5, 17] {
                            let hits: Vec<AtomicUsize> =
                                (0..workers).map(|_| AtomicUsize::new(0)).collect();
                            for_workers(workers, &|w| {
                                hits[w].fetch_add(1, Ordering::Relaxed);
                            });
                            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
                        }
                        // Many sections in a row (the helper's epoch bookkeeping), and
                        // chunked output writes.
                        for round in 0..200usize {
                            let mut out = vec![0.0f32; 1000 + round];
                            par_chunks_mut(&mut out, 7, 4, |i, c| {
                                for (j, v) in c.iter_mut().enumerate() {
                                    *v += (i * 7 + j) as f32;
                                }
                            });
                            assert!(out.iter().enumerate().all(|(i, &v)| v == i as f32));
                        }
                    };
                    if in_team {
                        with_team(check);
                    } else {
                        check();
                    }
                }
            });
        }
    }

    #[test]
    fn nested_sections_run_in_order() {
        pool(2).install(|| {
            with_team(|| {
                let total = AtomicUsize::new(0);
                for_workers(3, &|_| {
                    for_workers(4, &|_| {
                        total.fetch_add(1, Ordering::Relaxed);
                    });
                });
                assert_eq!(total.load(Ordering::Relaxed), 12);
            });
        });
    }

    #[test]
    fn a_panicking_slot_reaches_the_caller_and_the_team_stays_usable() {
        pool(2).install(|| {
            with_team(|| {
                let r = catch_unwind(AssertUnwindSafe(|| {
                    for_workers(2, &|w| {
                        if w == 1 {
                            panic!("slot 1");
                        }
                    })
                }));
                assert!(r.is_err());
                let hits = AtomicUsize::new(0);
                for_workers(2, &|_| {
                    hits.fetch_add(1, Ordering::Relaxed);
                });
                assert_eq!(hits.load(Ordering::Relaxed), 2);
            });
        });
    }

    /// Runs on several threads at once (a server's workers): only a run alone on the pool
    /// hires a helper, the others run their sections serially; every slot still runs once.
    #[test]
    fn concurrent_runs_each_run_every_slot_once() {
        std::thread::scope(|sc| {
            for t in 0..4usize {
                sc.spawn(move || {
                    for run in 0..50usize {
                        with_team(|| {
                            for sec in 0..20usize {
                                let workers = 2 + (sec + run + t) % 3;
                                let hits: Vec<AtomicUsize> =
                                    (0..workers).map(|_| AtomicUsize::new(0)).collect();
                                for_workers(workers, &|w| {
                                    hits[w].fetch_add(1, Ordering::Relaxed);
                                });
                                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
                            }
                        });
                    }
                });
            }
        });
    }

    /// Many short sections of varying width in many runs, slots of uneven length: every
    /// slot of every section runs exactly once (this caught a helper claiming a slot of
    /// the next section against the previous section's state).
    #[test]
    fn sections_in_quick_succession_run_every_slot_once() {
        pool(2).install(|| {
            for run in 0..300usize {
                with_team(|| {
                    for sec in 0..100usize {
                        let workers = 2 + (sec + run) % 3;
                        let hits: Vec<AtomicUsize> =
                            (0..workers).map(|_| AtomicUsize::new(0)).collect();
                        let spin = (sec * 7919 + run) % 300;
                        for_workers(workers, &|w| {
                            for _ in 0..spin * w {
                                std::hint::spin_loop();
                            }
                            hits[w].fetch_add(1, Ordering::Relaxed);
                        });
                        assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
                    }
                });
            }
        });
    }

    /// In a run, slot 0 of every section runs on the calling thread (the rule that lets
    /// [`Ends`] keep the same rows on the same core from layer to layer).
    #[test]
    fn slot_zero_runs_on_the_publishing_thread() {
        pool(2).install(|| {
            with_team(|| {
                let me = std::thread::current().id();
                for _ in 0..200 {
                    let ok = AtomicBool::new(false);
                    for_workers(2, &|w| {
                        if w == 0 {
                            ok.store(std::thread::current().id() == me, Ordering::Relaxed);
                        }
                    });
                    assert!(ok.load(Ordering::Relaxed));
                }
            });
        });
    }

    /// Both ends together hand out every item exactly once; slot 0's items are a prefix
    /// taken in order, the others' a suffix taken from the back.
    #[test]
    fn ends_hand_out_every_item_once_front_to_slot_zero() {
        for n in [0usize, 1, 2, 3, 7, 64, 1000] {
            for workers in [1usize, 2, 3] {
                let ends = Ends::new(n);
                let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
                let seq: Vec<Mutex<Vec<usize>>> =
                    (0..workers).map(|_| Mutex::new(Vec::new())).collect();
                std::thread::scope(|sc| {
                    for w in 0..workers {
                        let (ends, hits, seq) = (&ends, &hits, &seq);
                        sc.spawn(move || {
                            while let Some(i) = ends.take(w) {
                                hits[i].fetch_add(1, Ordering::Relaxed);
                                seq[w].lock().unwrap_or_else(|e| e.into_inner()).push(i);
                            }
                        });
                    }
                });
                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1), "n {n}");
                let front = seq[0].lock().unwrap_or_else(|e| e.into_inner()).clone();
                assert_eq!(front, (0..front.len()).collect::<Vec<_>>(), "n {n}");
                for s in &seq[1..] {
                    let s = s.lock().unwrap_or_else(|e| e.into_inner());
                    assert!(s.windows(2).all(|p| p[0] > p[1]), "n {n}");
                    assert!(s.iter().all(|&i| i >= front.len()), "n {n}");
                }
            }
        }
        // Beyond the halves' range every slot takes from the front.
        let big = Ends::new(Ends::MAX_ITEMS + 5);
        assert_eq!(
            (big.take(0), big.take(1), big.take(0)),
            (Some(0), Some(1), Some(2))
        );
        let front = Ends::front(3);
        let got = [front.take(1), front.take(0), front.take(2), front.take(0)];
        assert_eq!(got, [Some(0), Some(1), Some(2), None]);
    }
}
