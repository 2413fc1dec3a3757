//! Worker threads that create small regular files while the extractor keeps reading
//! the tar stream. Used beyond 2 cores only (see
//! [`default_writer_threads`](super::extract::default_writer_threads)): on 2 cores one
//! core decompresses and inline creation on the other was faster, as workers mostly
//! wait on each other's directory locks there.
//!
//! The extractor does every check and every directory, link and removal itself; a
//! worker only creates a new file (`O_EXCL`) in a directory the extractor has already
//! verified. The extractor [`WriterPool::flush`]es before it touches a path a worker
//! may still be writing, before replacing a directory, before hard links and at the end.

use std::collections::HashSet;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use super::extract::create::{create_file, Creator, FileMeta};

/// Files at most this big are handed to workers (bigger ones are written inline).
pub(crate) const MAX_POOLED_FILE: u64 = 1 << 20;
/// Jobs queued at most (bounds memory to QUEUE * MAX_POOLED_FILE).
const QUEUE: usize = 64;

/// A regular file to create.
pub(crate) struct FileJob {
    pub host: PathBuf,
    pub data: Vec<u8>,
    pub meta: FileMeta,
}

/// Outcome of a job: whether the owner was outside the namespace's mapping.
type Done = Result<bool, (PathBuf, io::Error)>;

pub(crate) struct WriterPool {
    jobs: Option<SyncSender<FileJob>>,
    done: Receiver<Done>,
    outstanding: usize,
    pending: HashSet<PathBuf>,
    /// Files whose owner could not be set.
    pub unmapped_owners: u64,
}

impl WriterPool {
    /// Starts `threads` workers in `scope`.
    pub fn start<'scope>(
        scope: &'scope std::thread::Scope<'scope, '_>,
        threads: usize,
        creator: Creator,
    ) -> WriterPool {
        let (jobs_tx, jobs_rx) = mpsc::sync_channel::<FileJob>(QUEUE);
        let (done_tx, done_rx) = mpsc::channel::<Done>();
        let jobs_rx = Arc::new(Mutex::new(jobs_rx));
        for _ in 0..threads {
            let jobs = jobs_rx.clone();
            let done = done_tx.clone();
            scope.spawn(move || loop {
                let job = match jobs.lock() {
                    Ok(rx) => rx.recv(),
                    Err(_) => return,
                };
                let Ok(job) = job else { return };
                let host = job.host.clone();
                let written =
                    create_file(&job.host, &job.meta, &creator, |f| f.write_all(&job.data));
                if done.send(written.map_err(|e| (host, e))).is_err() {
                    return;
                }
            });
        }
        WriterPool {
            jobs: Some(jobs_tx),
            done: done_rx,
            outstanding: 0,
            pending: HashSet::new(),
            unmapped_owners: 0,
        }
    }

    /// Whether a worker may still be writing `host`.
    pub fn is_pending(&self, host: &Path) -> bool {
        self.pending.contains(host)
    }

    /// Queues a file (blocks while the queue is full).
    pub fn submit(&mut self, job: FileJob) -> Result<(), (PathBuf, io::Error)> {
        while let Ok(result) = self.done.try_recv() {
            self.outstanding -= 1;
            self.unmapped_owners += u64::from(result?);
        }
        self.pending.insert(job.host.clone());
        self.outstanding += 1;
        let host = job.host.clone();
        self.jobs
            .as_ref()
            .expect("pool open")
            .send(job)
            .map_err(|_| (host, io::Error::other("file writer threads stopped")))
    }

    /// Waits until every queued file is written; returns the first error.
    pub fn flush(&mut self) -> Result<(), (PathBuf, io::Error)> {
        let mut first_err = None;
        while self.outstanding > 0 {
            let result = self.done.recv().map_err(|_| {
                (
                    PathBuf::new(),
                    io::Error::other("file writer threads stopped"),
                )
            })?;
            self.outstanding -= 1;
            match result {
                Ok(unmapped) => self.unmapped_owners += u64::from(unmapped),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        self.pending.clear();
        first_err.map_or(Ok(()), Err)
    }
}

impl Drop for WriterPool {
    fn drop(&mut self) {
        // Closing the queue lets the scoped workers finish.
        self.jobs = None;
    }
}
