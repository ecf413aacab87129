//! Per-command latency as INFO and LATENCY HISTOGRAM carry it between
//! shards: only the histogram buckets that were recorded.
//!
//! A shard's histogram for one command (`hdrhistogram`, 2 significant
//! digits over 2^56 ticks) is about 50 KB of counters, nearly all zero.
//! Cloning one per command per shard for every INFO allocated tens of MB a
//! call on the shard threads and freed them on another, which the
//! allocator gives back slowly: a client polling INFO grew the process by
//! 100 MB. A command rarely touches more than a few dozen buckets.

use hdrhistogram::Histogram;

/// Recorded buckets as (the bucket's highest value, count), by value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recorded(Vec<(u64, u64)>);

impl Recorded {
    pub fn of(h: &Histogram<u64>) -> Recorded {
        Recorded(h.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())).collect())
    }

    #[cfg(test)]
    fn from_pairs(mut v: Vec<(u64, u64)>) -> Recorded {
        v.sort_unstable();
        Recorded(v)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn total(&self) -> u64 {
        self.0.iter().map(|&(_, n)| n).sum()
    }

    pub fn buckets(&self) -> &[(u64, u64)] {
        &self.0
    }

    /// Add another shard's buckets (the same bucket layout: equal values
    /// are the same bucket).
    pub fn merge(&mut self, other: &Recorded) {
        let mut out = Vec::with_capacity(self.0.len() + other.0.len());
        let (mut a, mut b) = (self.0.iter().peekable(), other.0.iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(&&(va, na)), Some(&&(vb, nb))) if va == vb => {
                    a.next();
                    b.next();
                    (va, na + nb)
                }
                (Some(&&x), Some(&&y)) => {
                    if x.0 < y.0 {
                        a.next();
                        x
                    } else {
                        b.next();
                        y
                    }
                }
                (Some(&&x), None) => {
                    a.next();
                    x
                }
                (None, Some(&&y)) => {
                    b.next();
                    y
                }
                (None, None) => break,
            };
            out.push(next);
        }
        self.0 = out;
    }

    /// The value at quantile `q` (0..=1), as hdrhistogram computes it: the
    /// highest value of the first bucket where the running count reaches
    /// ceil(q × total), at least 1.
    pub fn value_at_quantile(&self, q: f64) -> u64 {
        let total = self.total();
        let want = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for &(v, n) in &self.0 {
            seen += n;
            if seen >= want {
                return v;
            }
        }
        self.0.last().map_or(0, |&(v, _)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(values: &[u64]) -> Histogram<u64> {
        let mut h = Histogram::<u64>::new_with_bounds(1, 1 << 56, 2).expect("bounds");
        for &v in values {
            h.record(v).expect("in range");
        }
        h
    }

    #[test]
    fn quantiles_match_the_full_histogram() {
        let values: Vec<u64> = (0..5000u64).map(|i| 1 + (i * i * 7919) % 3_000_000).collect();
        let h = hist(&values);
        let r = Recorded::of(&h);
        assert!(r.buckets().len() < 1000, "{} buckets", r.buckets().len());
        assert_eq!(r.total(), 5000);
        for q in [0.0, 0.001, 0.5, 0.9, 0.99, 0.999, 1.0] {
            assert_eq!(r.value_at_quantile(q), h.value_at_quantile(q), "q={q}");
        }
    }

    #[test]
    fn merging_shards_equals_one_histogram_of_everything() {
        let a: Vec<u64> = (1..2000).map(|i| i * 13).collect();
        let b: Vec<u64> = (1..3000).map(|i| i * 7 + 100_000).collect();
        let mut r = Recorded::of(&hist(&a));
        r.merge(&Recorded::of(&hist(&b)));
        let all = hist(&[a, b].concat());
        assert_eq!(r, Recorded::of(&all));
        for q in [0.5, 0.99, 0.999] {
            assert_eq!(r.value_at_quantile(q), all.value_at_quantile(q));
        }
        let mut e = Recorded::default();
        e.merge(&Recorded::from_pairs(vec![(5, 1), (3, 2)]));
        assert_eq!(e.buckets(), &[(3, 2), (5, 1)]);
        assert_eq!(Recorded::default().value_at_quantile(0.5), 0);
    }
}
