//! The progress bar of `idsync sync`: objects read, operations planned and applied, rate, ETA.

use idsync_core::Plan;
use idsync_engine::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Bar {
    bar: ProgressBar,
}

impl Bar {
    pub fn new(visible: bool) -> Self {
        let bar = ProgressBar::with_draw_target(
            Some(0),
            if visible {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::hidden()
            },
        );
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message("reading the source");
        Self { bar }
    }

    pub fn clear(&self) {
        self.bar.finish_and_clear();
    }
}

impl Progress for Bar {
    fn read(&self, users: usize, groups: usize, memberships: usize) {
        self.bar.set_message(format!(
            "read {users} users, {groups} groups, {memberships} memberships; planning"
        ));
    }

    fn planned(&self, plan: &Plan) {
        self.bar.set_length(plan.len() as u64);
        self.bar.set_style(
            ProgressStyle::with_template(
                "{bar:30} {pos}/{len} operations applied ({per_sec}, ETA {eta}) {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        self.bar.set_message(String::new());
    }

    fn applied(&self, _failed: bool) {
        self.bar.inc(1);
    }
}
