//! One timer a task keeps for its whole life and aims at whatever deadline the core names
//! next, so a wake-up does not register a fresh timer with the reactor each time.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use mediakit_core::Millis;

use super::runtime::{Runtime, Timer as _};

/// A task's deadline: none, or a time at which [`Deadline::poll`] becomes ready once.
#[derive(Debug)]
pub struct Deadline<R: Runtime> {
    timer: Option<R::Sleep>,
    /// The deadline the timer is set for; `None` when there is none, or it has fired (a fired
    /// timer stays ready until it is moved).
    armed: Option<Millis>,
}

impl<R: Runtime> Default for Deadline<R> {
    fn default() -> Self {
        Self {
            timer: None,
            armed: None,
        }
    }
}

impl<R: Runtime> Deadline<R> {
    /// Aims at `at`, or at nothing. Setting the deadline it already has costs nothing.
    pub fn set(&mut self, at: Option<Millis>) {
        match at {
            Some(at) if self.armed != Some(at) => {
                match &mut self.timer {
                    Some(timer) => timer.reset(at),
                    None => self.timer = Some(R::sleep_until(at)),
                }
                self.armed = Some(at);
            }
            Some(_) => {}
            None => self.armed = None,
        }
    }

    /// Ready once the deadline has passed; then there is none until the next
    /// [`Deadline::set`].
    pub fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let (Some(_), Some(timer)) = (self.armed, self.timer.as_mut()) else {
            return Poll::Pending;
        };
        let fired = Pin::new(timer).poll(cx);
        if fired.is_ready() {
            self.armed = None;
        }
        fired
    }
}
