//! Quantiles by nearest rank: the one definition loket reports waits (KPIs) and latencies (evaluation, benches)
//! with, so a p90 means the same everywhere. Leaf code: it imports nothing of the crate.

/// The `q` quantile (0 < q <= 1) of `sorted` (ascending) by nearest rank: the smallest value with at least a
/// fraction `q` of the values at or below it. `None` when there are no values.
pub fn nearest_rank<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// The median of `sorted` (ascending): the middle value, or the mean of the two middle ones.
pub fn median(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_is_the_smallest_value_covering_the_fraction() {
        let values: Vec<u32> = (1..=10).collect();
        assert_eq!(nearest_rank(&values, 0.9), Some(9));
        assert_eq!(nearest_rank(&values, 0.91), Some(10));
        assert_eq!(nearest_rank(&values, 0.5), Some(5));
        assert_eq!(nearest_rank(&values, 1.0), Some(10));
        assert_eq!(nearest_rank(&values[..1], 0.99), Some(1));
        assert_eq!(nearest_rank::<u32>(&[], 0.5), None);
        assert_eq!(median(&[1.0, 2.0, 3.0, 4.0]), Some(2.5));
        assert_eq!(median(&[3.0]), Some(3.0));
    }
}
