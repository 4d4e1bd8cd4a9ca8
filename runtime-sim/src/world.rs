//! The simulated world: one virtual clock, one executor, one network, one seed, installed in
//! a thread-local for as long as its [`World`] guard lives, so tests running in parallel
//! threads never see each other.
//!
//! Time moves only when nothing can run: the run loop polls ready tasks in wake order, and
//! when none is left it jumps the clock to the earliest timer and wakes what was waiting for
//! it. So a scenario of minutes runs in milliseconds, and its order of events depends on the
//! seed alone.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};

use mediakit_core::Millis;

use crate::executor::{Executor, TaskId};
use crate::net::tcp::{TcpListener, TcpStream};
use crate::net::udp::UdpSocket;
use crate::net::{self, NetConfig, NetStats, Network, SharedNetwork};
use crate::rng::SimRng;
use crate::timer::{Clock, Sleep};

/// Purposes of the world's independent random streams (see [`SimRng::fork`]).
mod purpose {
    pub const SESSIONS: u64 = 1;
    pub const NETWORK: u64 = 2;
    /// Streams handed to tests by [`super::World::rng`] start here.
    pub const USER: u64 = 1_000;
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<Inner>>> = const { RefCell::new(None) };
}

/// How a world runs.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// The simulated network.
    pub net: NetConfig,
    /// Polls allowed at one instant of virtual time before the run loop decides the tasks
    /// are spinning (waking each other without ever waiting for time) and panics.
    pub max_polls_per_instant: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            net: NetConfig::default(),
            max_polls_per_instant: 2_000_000,
        }
    }
}

/// The state of a world, shared by its guard and every handle into it.
#[derive(Debug)]
pub(crate) struct Inner {
    seed: u64,
    pub(crate) clock: Rc<Clock>,
    pub(crate) executor: Executor,
    pub(crate) net: SharedNetwork,
    sessions: RefCell<SimRng>,
    running: Cell<bool>,
    polls_this_instant: Cell<u64>,
    max_polls_per_instant: u64,
}

/// How a run of the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The condition held.
    Done,
    /// The clock reached the limit.
    Limit,
    /// Nothing will ever run again: no task is ready and no timer is set.
    Idle,
    /// The loop was already running on this thread (a task tried to run the world).
    Nested,
}

impl Inner {
    /// The virtual clock.
    pub(crate) fn now(&self) -> Millis {
        self.clock.now()
    }

    /// A timer that fires when this world's clock reaches `deadline`.
    pub(crate) fn sleep_until(&self, deadline: Millis) -> Sleep {
        Sleep::new(Rc::clone(&self.clock), deadline)
    }

    /// The next seed for a session (handshake bytes, session ids, SSRCs).
    pub(crate) fn next_seed(&self) -> u64 {
        self.sessions.borrow_mut().next_u64()
    }

    /// Spawns a task whose result the returned handle holds.
    pub(crate) fn spawn<F>(self: &Rc<Self>, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
    {
        let state = Rc::new(JoinState {
            result: RefCell::new(None),
            finished: Cell::new(false),
            waker: RefCell::new(None),
        });
        let done = Rc::clone(&state);
        let id = self.executor.spawn(async move {
            let output = future.await;
            *done.result.borrow_mut() = Some(output);
            done.finish();
        });
        JoinHandle {
            state,
            world: Rc::downgrade(self),
            id,
        }
    }

    /// Moves the clock to `at` and wakes the timers due then.
    fn advance_to(&self, at: Millis) {
        if self.clock.advance(at) {
            self.polls_this_instant.set(0);
        }
        let due = self.clock.timers.borrow_mut().take_due(at);
        for waker in due {
            waker.wake();
        }
    }

    /// Runs until `done` holds, the clock passes `until`, or nothing is left to run.
    pub(crate) fn run(&self, done: &mut dyn FnMut() -> bool, until: Millis) -> Outcome {
        if self.running.replace(true) {
            return Outcome::Nested;
        }
        let outcome = loop {
            if done() {
                break Outcome::Done;
            }
            if self.executor.poll_next() {
                let polls = self.polls_this_instant.get() + 1;
                self.polls_this_instant.set(polls);
                if polls > self.max_polls_per_instant {
                    self.running.set(false);
                    panic!(
                        "simulation livelock: {polls} polls at {} ms without the clock moving",
                        self.now().0
                    );
                }
                continue;
            }
            let next = self.clock.timers.borrow().next_deadline();
            match next {
                Some(at) if at <= until => self.advance_to(at),
                Some(_) => {
                    self.advance_to(until);
                    break Outcome::Limit;
                }
                None if until == Millis(u64::MAX) => break Outcome::Idle,
                None => {
                    self.advance_to(until);
                    break Outcome::Limit;
                }
            }
        };
        self.running.set(false);
        outcome
    }
}

/// The thread's world, if one is installed.
pub(crate) fn current() -> Option<Rc<Inner>> {
    CURRENT.with(|slot| slot.borrow().clone())
}

/// The thread's world; `what` names the caller in the panic when there is none.
pub(crate) fn expect_current(what: &str) -> Rc<Inner> {
    current().unwrap_or_else(|| panic!("{what} needs a mediakit_sim::World on this thread"))
}

/// A simulated world, installed on the current thread until dropped.
///
/// ```
/// use mediakit_sim::World;
///
/// let world = World::new(7);
/// let task = world.spawn(async {
///     mediakit_sim::sleep(1_500).await;
///     mediakit_sim::now()
/// });
/// assert!(world.run_until(|| task.is_finished(), 10_000));
/// assert_eq!(task.take().map(|t| t.0), Some(1_500));
/// ```
#[derive(Debug)]
pub struct World {
    inner: Rc<Inner>,
}

impl World {
    /// A world whose every random choice derives from `seed`, with a default network.
    ///
    /// # Panics
    /// If this thread already has a world: two at once would share one thread-local.
    pub fn new(seed: u64) -> World {
        World::with_config(seed, SimConfig::default())
    }

    /// A world with the given network and limits.
    ///
    /// # Panics
    /// If this thread already has a world.
    pub fn with_config(seed: u64, config: SimConfig) -> World {
        let inner = Rc::new(Inner {
            seed,
            clock: Rc::new(Clock::default()),
            executor: Executor::new(),
            net: Rc::new(RefCell::new(Network::new(
                config.net,
                SimRng::fork(seed, purpose::NETWORK),
            ))),
            sessions: RefCell::new(SimRng::fork(seed, purpose::SESSIONS)),
            running: Cell::new(false),
            polls_this_instant: Cell::new(0),
            max_polls_per_instant: config.max_polls_per_instant,
        });
        CURRENT.with(|slot| {
            let mut slot = slot.borrow_mut();
            assert!(
                slot.is_none(),
                "a mediakit_sim::World is already installed on this thread"
            );
            *slot = Some(Rc::clone(&inner));
        });
        net::install(Some(Rc::clone(&inner.net)));
        World { inner }
    }

    /// The seed the world was made from.
    pub fn seed(&self) -> u64 {
        self.inner.seed
    }

    /// The virtual clock: milliseconds since the world began.
    pub fn now(&self) -> Millis {
        self.inner.now()
    }

    /// An independent random stream for the test's own choices (media sizes, join times),
    /// fixed by the world's seed and `stream`.
    pub fn rng(&self, stream: u64) -> SimRng {
        SimRng::fork(self.inner.seed, purpose::USER.wrapping_add(stream))
    }

    /// Spawns a task; it runs when the world runs.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
    {
        self.inner.spawn(future)
    }

    /// Runs until `condition` holds (checked before every poll) or `within_ms` of virtual
    /// time have passed; returns whether the condition held. On timeout the clock stands at
    /// the limit.
    ///
    /// # Panics
    /// If called from inside a task, or if the tasks spin without waiting (see
    /// [`SimConfig::max_polls_per_instant`]).
    pub fn run_until(&self, mut condition: impl FnMut() -> bool, within_ms: u64) -> bool {
        let until = self.now() + within_ms;
        match self.inner.run(&mut condition, until) {
            Outcome::Done => true,
            Outcome::Limit | Outcome::Idle => false,
            Outcome::Nested => panic!("World::run_until called from inside a simulated task"),
        }
    }

    /// Runs for `ms` of virtual time: everything due up to and at `now + ms` happens.
    ///
    /// # Panics
    /// As [`World::run_until`].
    pub fn run_for(&self, ms: u64) {
        self.run_until(|| false, ms);
    }

    /// Runs the tasks that are ready, and those they wake, without moving the clock.
    ///
    /// # Panics
    /// As [`World::run_until`].
    pub fn run_pending(&self) {
        self.run_for(0);
    }

    /// Spawns `future` and runs until it completes or `within_ms` have passed; its output,
    /// or `None` on timeout (the task is then aborted).
    ///
    /// # Panics
    /// As [`World::run_until`].
    pub fn block_on<F>(&self, future: F, within_ms: u64) -> Option<F::Output>
    where
        F: Future + 'static,
    {
        let task = self.spawn(future);
        self.run_until(|| task.is_finished(), within_ms);
        let output = task.take();
        task.abort();
        output
    }

    /// Connects from `from` (an ephemeral port is chosen) to a listener at `to`.
    pub fn connect(&self, from: IpAddr, to: SocketAddr) -> io::Result<TcpStream> {
        TcpStream::connect_in(&self.inner.net, from, to)
    }

    /// Binds a TCP listener at `addr`.
    pub fn listen(&self, addr: SocketAddr) -> io::Result<TcpListener> {
        TcpListener::bind_in(&self.inner.net, addr)
    }

    /// Binds a UDP socket at `addr`.
    pub fn bind_udp(&self, addr: SocketAddr) -> io::Result<UdpSocket> {
        UdpSocket::bind_in(&self.inner.net, addr)
    }

    /// Sets the probability that a UDP datagram is lost, from now on.
    pub fn set_udp_loss(&self, probability: f64) {
        self.inner.net.borrow_mut().config_mut().udp_loss = probability;
    }

    /// Sets the capacity of each direction of connections made from now on.
    pub fn set_tcp_buffer(&self, bytes: usize) {
        self.inner.net.borrow_mut().config_mut().tcp_buffer = bytes;
    }

    /// What the network did so far.
    pub fn net_stats(&self) -> NetStats {
        self.inner.net.borrow().stats()
    }

    /// Connections handed to each listener bound at `addr` (each worker's, with the
    /// engine), in the order they bound; refused ones included.
    pub fn listener_loads(&self, addr: SocketAddr) -> Vec<u64> {
        self.inner.net.borrow().listener_loads(addr)
    }

    /// TCP connections with at least one end still open.
    pub fn open_connections(&self) -> usize {
        self.inner.net.borrow().open_streams()
    }

    /// Tasks not yet finished.
    pub fn task_count(&self) -> usize {
        self.inner.executor.task_count()
    }

    /// Timers tasks wait on.
    pub fn timer_count(&self) -> usize {
        self.inner.clock.timers.borrow().len()
    }

    /// Task polls so far: a measure of the work a scenario took.
    pub fn polls(&self) -> u64 {
        self.inner.executor.polls()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // Tasks go first, while the world is still installed: their destructors close
        // sockets and cancel timers, and may reach the world through the thread-local.
        self.inner.executor.clear();
        self.inner.clock.timers.borrow_mut().clear();
        net::install(None);
        CURRENT.with(|slot| {
            if let Ok(mut slot) = slot.try_borrow_mut() {
                slot.take();
            }
        });
    }
}

/// Where a task's output waits for its [`JoinHandle`].
#[derive(Debug)]
struct JoinState<T> {
    result: RefCell<Option<T>>,
    finished: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl<T> JoinState<T> {
    fn finish(&self) {
        self.finished.set(true);
        if let Some(waker) = self.waker.borrow_mut().take() {
            waker.wake();
        }
    }
}

/// A spawned task: whether it finished, its output, and a way to stop it. Dropping the
/// handle does not stop the task. As a future it completes with the output (`None` if the
/// task was aborted or the output already taken).
#[derive(Debug)]
pub struct JoinHandle<T> {
    state: Rc<JoinState<T>>,
    world: Weak<Inner>,
    id: TaskId,
}

impl<T> JoinHandle<T> {
    /// True once the task completed (or was aborted).
    pub fn is_finished(&self) -> bool {
        self.state.finished.get()
    }

    /// Takes the task's output, once it completed.
    pub fn take(&self) -> Option<T> {
        self.state.result.borrow_mut().take()
    }

    /// Stops the task: it is dropped where it stands (its sockets close, its timers go).
    pub fn abort(&self) {
        if let Some(world) = self.world.upgrade() {
            if world.executor.abort(self.id) {
                self.state.finish();
            }
        }
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        if self.state.finished.get() {
            return Poll::Ready(self.take());
        }
        *self.state.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// The current world's virtual clock.
///
/// # Panics
/// Outside a [`World`].
pub fn now() -> Millis {
    expect_current("mediakit_sim::now").now()
}

/// The current world's virtual clock, or `None` on a thread without a world: for code that
/// may also run when none is installed, such as a log formatter.
pub fn try_now() -> Option<Millis> {
    current().map(|world| world.now())
}

/// Spawns a task on the current world.
///
/// # Panics
/// Outside a [`World`].
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
{
    expect_current("mediakit_sim::spawn").spawn(future)
}

/// The next session seed of the current world (what `Runtime::seed` hands the engine, and
/// what the client helpers seed their sessions with): reproducible from the world's seed.
///
/// # Panics
/// Outside a [`World`].
pub fn seed() -> u64 {
    expect_current("mediakit_sim::seed").next_seed()
}

/// A timer that fires when the current world's clock reaches `deadline`.
///
/// # Panics
/// Outside a [`World`].
pub fn sleep_until(deadline: Millis) -> Sleep {
    expect_current("mediakit_sim::sleep_until").sleep_until(deadline)
}

/// A timer that fires `ms` from now on the current world's clock.
///
/// # Panics
/// Outside a [`World`].
pub fn sleep(ms: u64) -> Sleep {
    let world = expect_current("mediakit_sim::sleep");
    world.sleep_until(world.now() + ms)
}

/// Lets every other ready task run once before the caller goes on.
pub async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_jumps_to_the_next_timer_when_nothing_is_ready() {
        let world = World::new(1);
        let log = Rc::new(RefCell::new(Vec::new()));
        for (name, delay) in [("b", 30u64), ("a", 10), ("c", 30)] {
            let log = Rc::clone(&log);
            world.spawn(async move {
                sleep(delay).await;
                log.borrow_mut().push((now().0, name));
            });
        }
        world.run_for(100);
        assert_eq!(*log.borrow(), [(10, "a"), (30, "b"), (30, "c")]);
        assert_eq!(world.now(), Millis(100));
    }

    #[test]
    fn run_until_stops_when_the_condition_holds() {
        let world = World::new(1);
        let ticks = Rc::new(Cell::new(0u32));
        let counter = Rc::clone(&ticks);
        world.spawn(async move {
            loop {
                sleep(7).await;
                counter.set(counter.get() + 1);
            }
        });
        assert!(world.run_until(|| ticks.get() == 3, 1_000));
        assert_eq!(world.now(), Millis(21));
        assert!(!world.run_until(|| ticks.get() == 100, 10));
        assert_eq!(world.now(), Millis(31));
        assert_eq!(ticks.get(), 4);
    }

    #[test]
    fn a_reset_timer_fires_at_its_new_deadline() {
        let world = World::new(1);
        let fired = world.spawn(async {
            let mut timer = sleep_until(Millis(50));
            // Poll once so the task waits on it, then move it while waiting.
            let mut first = true;
            std::future::poll_fn(|cx| {
                if first {
                    first = false;
                    let _ = Pin::new(&mut timer).poll(cx);
                    timer.reset(Millis(20));
                }
                Pin::new(&mut timer).poll(cx)
            })
            .await;
            let at = now();
            // Re-armed after firing.
            timer.reset(Millis(70));
            timer.await;
            (at, now())
        });
        world.run_for(100);
        assert_eq!(fired.take(), Some((Millis(20), Millis(70))));
    }

    #[test]
    fn block_on_returns_the_output_or_none_on_timeout() {
        let world = World::new(1);
        assert_eq!(world.block_on(async { 5 }, 0), Some(5));
        assert_eq!(
            world.block_on(
                async {
                    sleep(500).await;
                    1
                },
                100
            ),
            None
        );
        assert_eq!(world.task_count(), 0);
    }

    #[test]
    fn join_handles_complete_awaiting_tasks_and_abort_stops_tasks() {
        let world = World::new(1);
        let inner = world.spawn(async {
            sleep(10).await;
            "done"
        });
        let outer = world.spawn(async move { (inner.await, now()) });
        let stuck = world.spawn(std::future::pending::<()>());
        world.run_for(20);
        assert_eq!(outer.take(), Some((Some("done"), Millis(10))));
        assert!(!stuck.is_finished());
        stuck.abort();
        assert!(stuck.is_finished());
        assert_eq!(world.task_count(), 0);
    }

    #[test]
    fn sessions_seeds_follow_the_world_seed() {
        let draw = |seed| {
            let world = World::new(seed);
            let inner = Rc::clone(&world.inner);
            (
                inner.next_seed(),
                inner.next_seed(),
                world.rng(0).next_u64(),
            )
        };
        assert_eq!(draw(9), draw(9));
        assert_ne!(draw(9), draw(10));
    }

    #[test]
    fn worlds_on_other_threads_are_separate() {
        let world = World::new(1);
        world.run_for(5);
        assert_eq!(try_now(), Some(Millis(5)));
        let other = std::thread::spawn(|| {
            assert!(current().is_none());
            assert_eq!(try_now(), None);
            let world = World::new(2);
            world.now()
        })
        .join()
        .unwrap();
        assert_eq!(other, Millis::ZERO);
        assert_eq!(world.now(), Millis(5));
        drop(world);
        assert!(current().is_none());
        let _again = World::new(3);
    }

    #[test]
    #[should_panic(expected = "livelock")]
    fn spinning_tasks_are_caught() {
        let world = World::with_config(
            1,
            SimConfig {
                max_polls_per_instant: 1_000,
                ..SimConfig::default()
            },
        );
        world.spawn(async {
            loop {
                yield_now().await;
            }
        });
        world.run_for(1);
    }
}
