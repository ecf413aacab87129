//! Key choice for the load generator: uniform or Zipfian over `n` keys,
//! from a small seeded PRNG so runs are repeatable.

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        shardis::util::splitmix64(&mut self.0)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

pub enum KeyChooser {
    Uniform(u64),
    /// Cumulative probabilities of ranks 0..n (rank 0 most popular).
    Zipf(Vec<f64>),
}

impl KeyChooser {
    pub fn parse(spec: &str, n: u64) -> Result<KeyChooser, String> {
        if n == 0 {
            return Err("--keys must be at least 1".into());
        }
        if spec == "uniform" {
            return Ok(KeyChooser::Uniform(n));
        }
        let s: f64 = spec
            .strip_prefix("zipf:")
            .and_then(|x| x.parse().ok())
            .ok_or_else(|| format!("--dist must be uniform or zipf:S, got '{spec}'"))?;
        if !(s > 0.0 && s < 10.0) || n > 50_000_000 {
            return Err("zipf exponent must be in (0, 10) and keys at most 50M".into());
        }
        let mut cdf = Vec::with_capacity(n as usize);
        let mut acc = 0.0;
        for rank in 1..=n {
            acc += 1.0 / (rank as f64).powf(s);
            cdf.push(acc);
        }
        for c in cdf.iter_mut() {
            *c /= acc;
        }
        Ok(KeyChooser::Zipf(cdf))
    }

    pub fn pick(&self, rng: &mut Rng) -> u64 {
        match self {
            KeyChooser::Uniform(n) => rng.next_u64() % n,
            KeyChooser::Zipf(cdf) => {
                let u = rng.next_f64();
                cdf.partition_point(|&c| c < u).min(cdf.len() - 1) as u64
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_prefers_low_ranks_and_stays_in_range() {
        let z = KeyChooser::parse("zipf:0.99", 1000).expect("valid");
        let mut rng = Rng::new(7);
        let mut counts = vec![0u32; 1000];
        for _ in 0..100_000 {
            counts[z.pick(&mut rng) as usize] += 1;
        }
        assert!(counts[0] > counts[10] && counts[10] > counts[500], "{:?}", &counts[..12]);
        assert!(KeyChooser::parse("zipf:x", 10).is_err());
        assert!(KeyChooser::parse("uniform", 0).is_err());
    }

    #[test]
    fn uniform_covers_the_range() {
        let u = KeyChooser::parse("uniform", 10).expect("valid");
        let mut rng = Rng::new(1);
        let mut seen = [false; 10];
        for _ in 0..1000 {
            seen[u.pick(&mut rng) as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }
}
