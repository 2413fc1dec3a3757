//! Runs blob transfers a few at a time; the first error stops the rest.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use super::error::{RegistryError, Result};

/// Blob transfers running at once (the registry and two cores gain little beyond this).
pub const PARALLEL_TRANSFERS: usize = 3;

/// Calls `work` for every item with up to `workers` threads; returns the results in the
/// order of `items`, or the first error (items not yet started are skipped then).
pub fn for_each<T, R, F>(items: Vec<T>, workers: usize, work: F) -> Result<Vec<R>>
where
    T: Send,
    R: Send,
    F: Fn(T) -> Result<R> + Sync,
{
    let count = items.len();
    let queue = Mutex::new(items.into_iter().enumerate());
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..count).map(|_| None).collect());
    let first_error: Mutex<Option<RegistryError>> = Mutex::new(None);
    let failed = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for _ in 0..workers.clamp(1, count.max(1)) {
            scope.spawn(|| loop {
                if failed.load(Ordering::SeqCst) {
                    return;
                }
                let next = queue.lock().expect("queue lock").next();
                let Some((i, item)) = next else { return };
                match work(item) {
                    Ok(r) => results.lock().expect("results lock")[i] = Some(r),
                    Err(e) => {
                        failed.store(true, Ordering::SeqCst);
                        first_error.lock().expect("error lock").get_or_insert(e);
                        return;
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().expect("error lock") {
        return Err(e);
    }
    Ok(results
        .into_inner()
        .expect("results lock")
        .into_iter()
        .map(|r| r.expect("every item ran when nothing failed"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_stops_on_error() {
        let out = for_each((0..20).collect(), 3, |i: u32| Ok(i * 2)).unwrap();
        assert_eq!(out, (0..20).map(|i| i * 2).collect::<Vec<_>>());
        let err = for_each((0..20).collect(), 3, |i: u32| {
            if i == 5 {
                Err(RegistryError::io("item 5", std::io::Error::other("boom")))
            } else {
                Ok(i)
            }
        })
        .unwrap_err();
        assert!(err.to_string().contains("item 5"));
        assert!(for_each(Vec::<u32>::new(), 3, Ok).unwrap().is_empty());
    }
}
