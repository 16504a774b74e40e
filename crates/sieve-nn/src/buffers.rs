//! Recycled output buffers: the executor hands the `f32` data of every value it
//! frees (when nothing else holds it) to a small per-thread pool, and the ops with
//! large outputs (convolution, pooling) take their output buffer from it.
//!
//! Why: a batch-16 SqueezeNet allocates ~270 MB of fresh intermediate tensors per
//! run; allocations that large come straight from `mmap`, so every page is faulted
//! in and zeroed by the kernel on first touch — measured at ~30% of the run's CPU
//! time (system time) before this pool. A recycled buffer is only zeroed by
//! `resize` (no faults). Small outputs gain too: a new `vec![0.0; n]` is zeroed by
//! `memset` (or faulted in) before the kernel overwrites it, which cost MobileNet v1
//! 0.25 about a tenth of its batch-1 time while only buffers from 256 KiB were pooled
//! (docs/KERNELS.md "Session 20").
//!
//! Bounds, per thread: buffers under [`MIN_LEN`] floats are left to the allocator;
//! "small" buffers (under [`SMALL_LEN`] floats) at most [`MAX_SMALL`] and
//! [`MAX_SMALL_BYTES`] in total; larger ones at most [`MAX_BUFFERS`] and [`MAX_BYTES`].
//! The small class has its own bounds so that keeping the many small sizes of a deep
//! network neither evicts its large buffers nor holds much memory. The pool lives on
//! the thread that runs the model (the caller of `Model::run`), so buffers freed by one
//! run serve the next one on that thread.

use std::cell::RefCell;

/// Most large buffers kept per thread (MobileNet v2 at batch 1 cycles through ~20
/// pooled buffers of eight sizes; with 8 its largest output missed the pool and was
/// zeroed again on every run).
pub const MAX_BUFFERS: usize = 32;
/// Most bytes of large buffers kept per thread.
pub const MAX_BYTES: usize = 1 << 30;
/// Smallest buffer worth keeping, in floats (4 KiB: one page).
pub const MIN_LEN: usize = 1 << 10;
/// Buffers under this many floats (256 KiB) form the small class.
pub const SMALL_LEN: usize = 1 << 16;
/// Most small buffers kept per thread.
pub const MAX_SMALL: usize = 32;
/// Most bytes of small buffers kept per thread.
pub const MAX_SMALL_BYTES: usize = 8 << 20;
/// Requests from this many floats (16 MiB: above any batch-1 value of the shared and
/// generated models but VGG-16's first ones) may take any larger pooled buffer (see
/// `take_pooled`).
const HUGE: usize = 1 << 22;

thread_local! {
    static POOL: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// A zeroed vector of `len` floats: the smallest pooled buffer that holds it, or a
/// new allocation.
pub fn take_zeroed(len: usize) -> Vec<f32> {
    let mut v = take_empty(len);
    v.resize(len, 0.0);
    v
}

/// A vector of `len` floats whose contents are unspecified (left over from an earlier
/// use, or zero): for outputs the caller overwrites completely, so that a recycled
/// buffer is not zeroed first (a full extra pass over memory — 4.8 MB for MobileNet
/// v2's largest layer). Only buffers that already held `len` initialised floats are
/// reused this way (truncated, no unsafe code); otherwise a new zeroed allocation,
/// which joins the pool after its use (so a model run's sizes settle after a run or
/// two, then every large output comes from the pool without zeroing).
pub fn take_overwrite(len: usize) -> Vec<f32> {
    match take_pooled(len, Vec::len) {
        Some(mut v) => {
            v.truncate(len);
            v
        }
        None if len >= HUGE => take_zeroed(len),
        None => vec![0.0; len],
    }
}

/// An empty vector with room for `len` floats (to fill with `extend`): the smallest
/// pooled buffer that holds them, or a new allocation.
pub fn take_empty(len: usize) -> Vec<f32> {
    match take_pooled(len, Vec::capacity) {
        Some(mut v) => {
            v.clear();
            v
        }
        None => Vec::with_capacity(len),
    }
}

/// Removes from this thread's pool the buffer with the smallest `size` (its length or
/// its capacity) that is at least `len` but at most twice `len` (any size for a
/// [`HUGE`] request), if `len` is worth pooling. The upper bound keeps a large buffer
/// for the large request it was made for: a model run asks for the same sizes on every
/// run, so a miss allocates a buffer that is pooled for the next run, instead of
/// truncating another size's buffer (which that size would then have to zero again, on
/// every run). Huge requests (large batches) take any larger buffer as before: the
/// pool's byte bound holds only a few of them, so a new allocation would not stay
/// pooled and would be faulted in again on every run (MobileNet v2 at batch 64 ran 19%
/// slower with the bound applied to every size).
fn take_pooled(len: usize, size: fn(&Vec<f32>) -> usize) -> Option<Vec<f32>> {
    if len < MIN_LEN {
        return None;
    }
    POOL.with(|p| {
        let mut p = p.try_borrow_mut().ok()?;
        // Among equal sizes the most recently recycled buffer (the pool is kept in
        // recycling order), whose lines are the likeliest to still be in cache.
        let i = p
            .iter()
            .enumerate()
            .rev()
            .filter(|(_, v)| size(v) >= len && (size(v) / 2 <= len || len >= HUGE))
            .min_by_key(|(_, v)| size(v))
            .map(|(i, _)| i)?;
        Some(p.remove(i))
    })
}

/// Offers a no-longer-needed buffer to this thread's pool (dropped if it is small or
/// its class is full of buffers at least as large).
pub fn recycle(v: Vec<f32>) {
    if v.capacity() < MIN_LEN {
        return;
    }
    let small = |b: &Vec<f32>| b.capacity() < SMALL_LEN;
    let class = small(&v);
    let (max_n, max_bytes) = if class {
        (MAX_SMALL, MAX_SMALL_BYTES)
    } else {
        (MAX_BUFFERS, MAX_BYTES)
    };
    POOL.with(|p| {
        let Ok(mut p) = p.try_borrow_mut() else {
            return;
        };
        let fits = |p: &Vec<Vec<f32>>| {
            let (n, held) = p
                .iter()
                .filter(|b| small(b) == class)
                .fold((0, 0), |(n, h), b| (n + 1, h + b.capacity() * 4));
            n < max_n && held + v.capacity() * 4 <= max_bytes
        };
        while !fits(&p) {
            let smallest = p
                .iter()
                .enumerate()
                .filter(|(_, b)| small(b) == class)
                .min_by_key(|(_, b)| b.capacity())
                .filter(|(_, b)| b.capacity() < v.capacity())
                .map(|(i, _)| i);
            match smallest {
                Some(i) => drop(p.remove(i)),
                None => return,
            }
        }
        p.push(v);
    });
}

/// Floats held by this thread's pool.
#[cfg(test)]
fn pooled_floats() -> usize {
    POOL.with(|p| p.borrow().iter().map(|b| b.capacity()).sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recycled_buffers_come_back_zeroed_or_overwritable_and_bounded() {
        // Start from an empty pool whatever ran on this thread before.
        POOL.with(|p| p.borrow_mut().clear());
        assert_eq!(pooled_floats(), 0);
        let mut a = take_zeroed(MIN_LEN * 2);
        a.iter_mut().for_each(|x| *x = f32::NAN);
        let cap = a.capacity();
        recycle(a);
        assert_eq!(pooled_floats(), cap);
        // A smaller request reuses it, zeroed, with the requested length.
        let b = take_zeroed(MIN_LEN + 3);
        assert_eq!(b.len(), MIN_LEN + 3);
        assert!(b.iter().all(|&x| x == 0.0));
        assert_eq!(b.capacity(), cap);
        assert_eq!(pooled_floats(), 0);
        recycle(b);
        let e = take_empty(MIN_LEN);
        assert!(e.is_empty() && e.capacity() == cap);
        recycle(e);
        let _ = take_empty(MIN_LEN);
        // Small buffers are not kept; the count and byte bounds hold.
        recycle(vec![1.0; 10]);
        assert_eq!(pooled_floats(), 0);
        for _ in 0..MAX_SMALL + 3 {
            recycle(vec![0.0; MIN_LEN]);
        }
        assert_eq!(pooled_floats(), MAX_SMALL * MIN_LEN);
        // Overwrite requests reuse a buffer that held enough values, without zeroing.
        POOL.with(|p| p.borrow_mut().clear());
        recycle(vec![7.0; MIN_LEN * 2]);
        let o = take_overwrite(MIN_LEN + 1);
        assert!(o.len() == MIN_LEN + 1 && o.iter().all(|&x| x == 7.0));
        // A pooled buffer with capacity but too few initialised values is left in the
        // pool; the request gets a new zeroed buffer.
        POOL.with(|p| p.borrow_mut().clear());
        let mut short = Vec::with_capacity(MIN_LEN * 4);
        short.resize(MIN_LEN, 5.0);
        recycle(short);
        let z = take_overwrite(MIN_LEN * 3);
        assert!(z.len() == MIN_LEN * 3 && z.iter().all(|&x| x == 0.0));
        assert_eq!(pooled_floats(), MIN_LEN * 4);
        // A buffer more than twice the request is kept for a large request: the small
        // one allocates, the large one then finds its buffer intact.
        POOL.with(|p| p.borrow_mut().clear());
        recycle(vec![3.0; MIN_LEN * 5]);
        let small = take_overwrite(MIN_LEN * 2);
        assert!(small.len() == MIN_LEN * 2 && small.iter().all(|&x| x == 0.0));
        let large = take_overwrite(MIN_LEN * 5);
        assert!(large.len() == MIN_LEN * 5 && large.iter().all(|&x| x == 3.0));
        // A huge request takes any larger buffer (the pool holds few of them).
        POOL.with(|p| p.borrow_mut().clear());
        recycle(vec![2.0; HUGE * 3]);
        let huge = take_overwrite(HUGE);
        assert!(huge.len() == HUGE && huge.capacity() == HUGE * 3 && huge[0] == 2.0);
        // Of several, the smallest initialised length that holds the request.
        recycle(large);
        recycle(small);
        recycle(vec![4.0; MIN_LEN * 3]);
        let best = take_overwrite(MIN_LEN * 3);
        assert!(best.iter().all(|&x| x == 4.0));
        // Of equal sizes, the most recently recycled one (likeliest still in cache),
        // also after another buffer was taken out from between them.
        POOL.with(|p| p.borrow_mut().clear());
        for v in [1.0, 9.0, 2.0, 3.0] {
            recycle(vec![v; if v == 9.0 { MIN_LEN * 7 } else { MIN_LEN }]);
        }
        assert_eq!(take_overwrite(MIN_LEN * 4)[0], 9.0);
        assert_eq!(take_overwrite(MIN_LEN)[0], 3.0);
        assert_eq!(take_overwrite(MIN_LEN)[0], 2.0);
        assert_eq!(take_overwrite(MIN_LEN)[0], 1.0);
        // A full class makes room for a larger buffer by dropping its smallest one, and
        // drops a buffer no larger than any it holds.
        POOL.with(|p| p.borrow_mut().clear());
        for _ in 0..MAX_SMALL {
            recycle(vec![0.0; MIN_LEN]);
        }
        recycle(vec![0.0; MIN_LEN * 8]);
        assert_eq!(pooled_floats(), (MAX_SMALL - 1) * MIN_LEN + MIN_LEN * 8);
        recycle(vec![0.0; MIN_LEN]);
        assert_eq!(pooled_floats(), (MAX_SMALL - 1) * MIN_LEN + MIN_LEN * 8);
        // A request larger than every pooled buffer allocates.
        let c = take_zeroed(MIN_LEN * 20);
        assert_eq!(c.len(), MIN_LEN * 20);
        assert_eq!(pooled_floats(), (MAX_SMALL - 1) * MIN_LEN + MIN_LEN * 8);
        // The classes have separate bounds: a full small class does not keep large
        // buffers out (nor evict them), and the large class fills to its own count.
        for _ in 0..MAX_BUFFERS + 2 {
            recycle(vec![0.0; SMALL_LEN]);
        }
        let small_held = (MAX_SMALL - 1) * MIN_LEN + MIN_LEN * 8;
        assert_eq!(pooled_floats(), small_held + MAX_BUFFERS * SMALL_LEN);
        // Small buffers evict only small ones (the 8 * MIN_LEN one stays).
        for _ in 0..MAX_SMALL {
            recycle(vec![0.0; MIN_LEN * 2]);
        }
        let small_held = MIN_LEN * 8 + (MAX_SMALL - 1) * MIN_LEN * 2;
        assert_eq!(pooled_floats(), small_held + MAX_BUFFERS * SMALL_LEN);
        // The small class's byte bound: at most MAX_SMALL_BYTES of the largest small size.
        POOL.with(|p| p.borrow_mut().clear());
        for _ in 0..MAX_SMALL {
            recycle(vec![0.0; SMALL_LEN - 1]);
        }
        assert_eq!(
            pooled_floats(),
            MAX_SMALL_BYTES / ((SMALL_LEN - 1) * 4) * (SMALL_LEN - 1)
        );
    }
}
