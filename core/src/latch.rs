//! The first fatal error of a parser or session, kept and returned again on every later call.
//!
//! A connection whose input was malformed stays failed: later input cannot resynchronise it
//! into a half-understood state, while what it queued before the error can still be flushed.

/// Holds the first fatal error, if any.
#[derive(Debug, Clone)]
pub struct Latch<E>(Option<E>);

impl<E> Default for Latch<E> {
    fn default() -> Self {
        Self(None)
    }
}

impl<E: Clone> Latch<E> {
    /// A latch with no error.
    pub const fn new() -> Self {
        Self(None)
    }

    /// `Err` with the latched error, if there is one.
    pub fn check(&self) -> Result<(), E> {
        match &self.0 {
            Some(error) => Err(error.clone()),
            None => Ok(()),
        }
    }

    /// Latches the error of `result`, if any, and passes `result` on.
    pub fn record<T>(&mut self, result: Result<T, E>) -> Result<T, E> {
        if let Err(error) = &result {
            self.set(error.clone());
        }
        result
    }

    /// Latches `error` unless an earlier one is already latched.
    pub fn set(&mut self, error: E) {
        self.0.get_or_insert(error);
    }

    /// True once an error is latched.
    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_error() {
        let mut latch = Latch::new();
        assert_eq!(latch.check(), Ok(()));
        assert_eq!(latch.record::<u8>(Err("first")), Err("first"));
        latch.set("second");
        assert_eq!(latch.check(), Err("first"));
        assert!(latch.is_set());
    }
}
