//! Wake-ups for tasks on one thread: a flag another task sets, and a yield.
//!
//! Players are woken once per batch of frames; this is that wake, with no allocation, no
//! atomic and no lock: an `Rc` shared by the tasks of one worker. A notification that comes
//! while nobody waits is remembered, so none is lost between two polls.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// A single-waiter, single-thread notification.
#[derive(Debug, Default)]
pub struct LocalNotify {
    notified: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl LocalNotify {
    /// A notify with no pending notification.
    pub fn new() -> Self {
        Self::default()
    }

    /// Wakes the waiting task, or the next one to wait.
    pub fn notify(&self) {
        self.notified.set(true);
        if let Some(waker) = self.waker.borrow_mut().take() {
            waker.wake();
        }
    }

    /// Polls for a notification, registering the task to be woken by the next one.
    pub fn poll_notified(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.notified.replace(false) {
            return Poll::Ready(());
        }
        let mut slot = self.waker.borrow_mut();
        match slot.as_ref() {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// A future that completes at the next notification.
    pub fn notified(&self) -> Notified<'_> {
        Notified { notify: self }
    }
}

/// The future returned by [`LocalNotify::notified`].
#[derive(Debug)]
pub struct Notified<'a> {
    notify: &'a LocalNotify,
}

impl Future for Notified<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.notify.poll_notified(cx)
    }
}

/// `future`'s output, or `None` if `stop` is notified first: how a worker's long-lived tasks
/// (accept loops, UDP receive loops) end when the worker stops, rather than wait forever on a
/// socket.
pub async fn unless<F: Future>(stop: &LocalNotify, future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| {
        if stop.poll_notified(cx).is_ready() {
            return Poll::Ready(None);
        }
        future.as_mut().poll(cx).map(Some)
    })
    .await
}

/// Lets the worker's other tasks run once before this one goes on (after it used up a
/// [`WakeBudget`](mediakit_core::budget::WakeBudget)); works on any executor.
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// The future returned by [`yield_now`].
#[derive(Debug)]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct CountingWaker(AtomicUsize);
    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_notification_before_the_wait_is_kept_and_one_after_wakes() {
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&counter));
        let mut cx = Context::from_waker(&waker);
        let notify = LocalNotify::new();
        notify.notify();
        assert!(notify.poll_notified(&mut cx).is_ready());
        assert!(notify.poll_notified(&mut cx).is_pending());
        notify.notify();
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        assert!(notify.poll_notified(&mut cx).is_ready());
        assert!(notify.poll_notified(&mut cx).is_pending());
    }
}
