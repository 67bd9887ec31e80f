use idsync_core::Plan;

/// What a long run reports as it goes; the CLI draws a progress bar from it.
pub trait Progress: Send + Sync {
    /// The directory was read: objects in it.
    fn read(&self, _users: usize, _groups: usize, _memberships: usize) {}
    /// The plan is ready.
    fn planned(&self, _plan: &Plan) {}
    /// One more operation finished (whatever its outcome).
    fn applied(&self, _failed: bool) {}
    /// The run is over.
    fn finished(&self) {}
}

/// Reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}
