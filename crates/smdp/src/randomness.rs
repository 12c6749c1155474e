//! Where the SM-DP+ takes its randomness from: the operating system in
//! production, a generator the caller passes in (a seeded one makes a run
//! reproducible, see the crate documentation).
//!
//! The steps themselves take a `rand::CryptoRng` argument; [`Randomness`]
//! hands each call of a driver its own generator ([`CallRng`]), so no lock is
//! held while a step runs. With a passed-in generator, each call's generator
//! is seeded from it, in the order the calls begin: runs that begin their
//! calls in the same order draw the same numbers.

use std::convert::Infallible;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use rand::rand_core::UnwrapErr;
use rand::rngs::{StdRng, SysRng};
use rand::{CryptoRng, SeedableRng, TryCryptoRng, TryRng};

/// The source of randomness of an [`crate::Smdp`]. Cheap to clone: clones
/// share the source.
#[derive(Clone, Default)]
pub struct Randomness(Source);

#[derive(Clone, Default)]
enum Source {
    /// The operating system's generator, read for every draw.
    #[default]
    Os,
    /// A generator passed in, shared by all calls.
    Shared(Arc<Mutex<dyn CryptoRng + Send>>),
}

impl fmt::Debug for Randomness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            Source::Os => "Randomness::Os",
            Source::Shared(_) => "Randomness::Shared",
        })
    }
}

impl Randomness {
    /// The operating system's generator (`getrandom`), as production uses.
    pub fn os() -> Self {
        Self(Source::Os)
    }

    /// Draws from `rng`.
    pub fn from_rng(rng: impl CryptoRng + Send + 'static) -> Self {
        Self(Source::Shared(Arc::new(Mutex::new(rng))))
    }

    /// A ChaCha generator seeded with `seed`, for reproducible runs.
    pub fn seeded(seed: [u8; 32]) -> Self {
        Self::from_rng(StdRng::from_seed(seed))
    }

    /// The generator of one call.
    pub fn for_call(&self) -> CallRng {
        match &self.0 {
            Source::Os => CallRng(CallSource::Os(UnwrapErr(SysRng))),
            Source::Shared(rng) => {
                let mut rng = rng.lock().unwrap_or_else(PoisonError::into_inner);
                CallRng(CallSource::Forked(Box::new(StdRng::from_rng(&mut *rng))))
            }
        }
    }
}

/// The generator one call of a driver uses.
pub struct CallRng(CallSource);

enum CallSource {
    Os(UnwrapErr<SysRng>),
    Forked(Box<StdRng>),
}

impl fmt::Debug for CallRng {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CallRng")
    }
}

impl TryRng for CallRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        match &mut self.0 {
            CallSource::Os(r) => r.try_next_u32(),
            CallSource::Forked(r) => r.try_next_u32(),
        }
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        match &mut self.0 {
            CallSource::Os(r) => r.try_next_u64(),
            CallSource::Forked(r) => r.try_next_u64(),
        }
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        match &mut self.0 {
            CallSource::Os(r) => r.try_fill_bytes(dst),
            CallSource::Forked(r) => r.try_fill_bytes(dst),
        }
    }
}

impl TryCryptoRng for CallRng {}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn seeded_sources_repeat_and_os_does_not() {
        let draw = |r: &Randomness| {
            let mut out = [0u8; 32];
            r.for_call().fill_bytes(&mut out[..16]);
            r.for_call().fill_bytes(&mut out[16..]);
            out
        };
        let (a, b) = (Randomness::seeded([7; 32]), Randomness::seeded([7; 32]));
        assert_eq!(draw(&a), draw(&b));
        assert_ne!(draw(&a), draw(&Randomness::seeded([8; 32])));
        assert_ne!(draw(&Randomness::os()), draw(&Randomness::os()));
    }
}
