//! A small blocking connection pool shared by the SQLite and Redis backends. A connection that failed is
//! dropped rather than returned, so a broken socket or handle is never handed out again.

use std::sync::{Mutex, MutexGuard};

pub(crate) struct Pool<C> {
    idle: Mutex<Vec<C>>,
    max_idle: usize,
}

impl<C> Pool<C> {
    pub(crate) fn new(max_idle: usize) -> Self {
        Self { idle: Mutex::new(Vec::new()), max_idle }
    }

    /// Runs `f` on an idle connection, or on a new one from `connect`. The connection goes back to the pool only
    /// when `f` succeeded or failed in a way `keep` says leaves the connection sound.
    pub(crate) fn with<T, E>(
        &self,
        connect: impl FnOnce() -> Result<C, E>,
        keep: impl FnOnce(&E) -> bool,
        f: impl FnOnce(&mut C) -> Result<T, E>,
    ) -> Result<T, E> {
        let idle = self.lock().pop();
        let mut conn = match idle {
            Some(c) => c,
            None => connect()?,
        };
        let result = f(&mut conn);
        if result.as_ref().err().is_none_or(keep) {
            let mut idle = self.lock();
            if idle.len() < self.max_idle {
                idle.push(conn);
            }
        }
        result
    }

    fn lock(&self) -> MutexGuard<'_, Vec<C>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }
}
