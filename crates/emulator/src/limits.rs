//! The emulator's clock and Slack's rate limits.
//!
//! Every clock in the emulator is [`Clock`]: emulated time runs `scale` times faster than
//! real time, so with `--time-scale 100` a Tier 2 bucket refills 20 calls per emulated
//! minute, which is 0.6 real seconds. `Retry-After` is stated in emulated seconds, as
//! Slack would state it; a client sharing the time scale sleeps `Retry-After / scale`.
//! The clock is tokio's, so tests can pause and advance time.

use std::collections::HashMap;
use std::time::Duration;

use super::world::Bucket;

/// Emulated time: unix seconds, running `scale` times faster than the wall clock. The
/// scale can change while the emulator runs (`POST /_emulator/clock`): time stays
/// continuous and runs at the new rate from then on, so rate limits and retries follow.
#[derive(Debug)]
pub struct Clock {
    segment: std::sync::Mutex<Segment>,
}

/// Time since the last scale change.
#[derive(Debug, Clone, Copy)]
struct Segment {
    origin: tokio::time::Instant,
    epoch: f64,
    scale: f64,
}

impl Segment {
    fn now(&self) -> f64 {
        self.epoch + self.origin.elapsed().as_secs_f64() * self.scale
    }
}

impl Clock {
    /// A clock that reads `epoch` (unix seconds) now and runs `scale` times faster.
    pub fn new(epoch: f64, scale: f64) -> Clock {
        Clock {
            segment: std::sync::Mutex::new(Segment {
                origin: tokio::time::Instant::now(),
                epoch,
                scale: scale.max(f64::MIN_POSITIVE),
            }),
        }
    }

    fn segment(&self) -> Segment {
        *self
            .segment
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Emulated unix time in seconds.
    pub fn now(&self) -> f64 {
        self.segment().now()
    }

    /// The real duration of an emulated one, at the current scale.
    pub fn real(&self, emulated_secs: f64) -> Duration {
        Duration::from_secs_f64((emulated_secs / self.segment().scale).max(0.0))
    }

    pub fn scale(&self) -> f64 {
        self.segment().scale
    }

    /// Runs the clock `scale` times faster than real time from now on.
    pub fn set_scale(&self, scale: f64) {
        let mut segment = self
            .segment
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = segment.now();
        *segment = Segment {
            origin: tokio::time::Instant::now(),
            epoch: now,
            scale: scale.max(f64::MIN_POSITIVE),
        };
    }
}

#[derive(Debug, Clone, Copy)]
struct Level {
    tokens: f64,
    last: f64,
}

/// Token buckets by key. A request names every bucket it counts against (a SCIM write
/// counts against the org-wide write bucket and its endpoint's bucket); it passes only if
/// all have a token, and then takes one from each.
#[derive(Debug, Default)]
pub struct RateLimiter {
    levels: HashMap<String, Level>,
}

impl RateLimiter {
    /// Takes a token from every bucket, or says how many whole emulated seconds to wait.
    pub fn take(&mut self, now: f64, buckets: &[(String, Bucket)]) -> Result<(), u64> {
        let mut wait: f64 = 0.0;
        for (key, bucket) in buckets {
            let level = self.refilled(key, bucket, now);
            if level.tokens < 1.0 {
                let rate = bucket.per_minute / 60.0;
                wait = wait.max((1.0 - level.tokens) / rate);
            }
        }
        if wait > 0.0 {
            // A hair under a whole second is that second, not the next (float error).
            return Err(((wait - 1e-9).ceil() as u64).max(1));
        }
        for (key, _) in buckets {
            if let Some(level) = self.levels.get_mut(key) {
                level.tokens -= 1.0;
            }
        }
        Ok(())
    }

    fn refilled(&mut self, key: &str, bucket: &Bucket, now: f64) -> Level {
        let level = self.levels.entry(key.to_string()).or_insert(Level {
            tokens: bucket.burst,
            last: now,
        });
        let elapsed = (now - level.last).max(0.0);
        level.tokens = (level.tokens + elapsed * bucket.per_minute / 60.0).min(bucket.burst);
        level.last = now;
        *level
    }

    /// Forgets every bucket (a reset of the emulator).
    pub fn clear(&mut self) {
        self.levels.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_scale_keeps_time_continuous() {
        let clock = Clock::new(1_000.0, 1_000.0);
        std::thread::sleep(Duration::from_millis(20));
        let before = clock.now();
        assert!(before >= 1_020.0, "{before}");
        clock.set_scale(1.0);
        let after = clock.now();
        // Continuous (no jump back or ahead), and a real second is now a second.
        assert!(
            after >= before && after - before < 1.0,
            "{before} -> {after}"
        );
        assert_eq!(clock.real(60.0), Duration::from_secs(60));
        assert_eq!(clock.scale(), 1.0);
    }

    #[test]
    fn a_burst_over_the_bucket_waits_for_one_token() {
        let tier2 = Bucket {
            per_minute: 20.0,
            burst: 20.0,
        };
        let key = vec![("app:T1:usergroups.list".to_string(), tier2)];
        let mut limiter = RateLimiter::default();
        for _ in 0..20 {
            assert_eq!(limiter.take(0.0, &key), Ok(()));
        }
        // 20 per minute is one every 3 seconds.
        assert_eq!(limiter.take(0.0, &key), Err(3));
        assert_eq!(limiter.take(2.0, &key), Err(1));
        assert_eq!(limiter.take(3.0, &key), Ok(()));
    }

    #[test]
    fn every_named_bucket_must_have_a_token() {
        let wide = Bucket {
            per_minute: 600.0,
            burst: 180.0,
        };
        let narrow = Bucket {
            per_minute: 180.0,
            burst: 2.0,
        };
        let mut limiter = RateLimiter::default();
        let both = vec![
            ("writes".to_string(), wide),
            ("post-users".to_string(), narrow),
        ];
        assert!(limiter.take(0.0, &both).is_ok());
        assert!(limiter.take(0.0, &both).is_ok());
        assert!(limiter.take(0.0, &both).is_err());
        // The refused request took nothing from the wide bucket.
        let wide_only = vec![("writes".to_string(), wide)];
        for _ in 0..178 {
            assert!(limiter.take(0.0, &wide_only).is_ok());
        }
        assert!(limiter.take(0.0, &wide_only).is_err());
    }
}
