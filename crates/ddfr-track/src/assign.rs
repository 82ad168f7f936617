//! One-to-one assignment by descending score.

/// Pairs rows with columns one to one, taking the highest-scoring pair first. `pairs` holds
/// `(row, column, score)`; pairs with a NaN score are ignored; ties keep the input order.
/// Returns, per row `0..n_rows`, the column it got.
///
/// Greedy is what the tracker needs: scores here are dominated by one clear best pair per row,
/// and the result is stable and explainable ("the better match wins"), unlike a global optimum
/// that may trade a strong pair for two mediocre ones.
pub fn greedy_assignment(
    n_rows: usize,
    n_columns: usize,
    pairs: &[(usize, usize, f32)],
) -> Vec<Option<usize>> {
    let mut order: Vec<&(usize, usize, f32)> =
        pairs.iter().filter(|(r, c, s)| *r < n_rows && *c < n_columns && !s.is_nan()).collect();
    order.sort_by(|a, b| b.2.total_cmp(&a.2));
    let mut row_to_column = vec![None; n_rows];
    let mut column_taken = vec![false; n_columns];
    for &&(row, column, _) in &order {
        if row_to_column[row].is_none() && !column_taken[column] {
            row_to_column[row] = Some(column);
            column_taken[column] = true;
        }
    }
    row_to_column
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn best_pair_wins_and_loser_takes_the_next() {
        // Row 0 and row 1 both prefer column 0; row 1's pair is better.
        let pairs = [(0, 0, 0.8), (1, 0, 0.9), (0, 1, 0.7)];
        assert_eq!(greedy_assignment(2, 2, &pairs), vec![Some(1), Some(0)]);
    }

    #[test]
    fn rows_without_pairs_get_nothing_and_nan_is_ignored() {
        let pairs = [(0, 0, f32::NAN), (2, 1, 0.1)];
        assert_eq!(greedy_assignment(3, 2, &pairs), vec![None, None, Some(1)]);
    }

    proptest! {
        #[test]
        fn assignment_is_one_to_one(
            pairs in proptest::collection::vec((0usize..6, 0usize..6, 0.0f32..1.0), 0..40)
        ) {
            let result = greedy_assignment(6, 6, &pairs);
            let mut seen = std::collections::HashSet::new();
            for (row, column) in result.iter().enumerate() {
                if let Some(column) = column {
                    prop_assert!(seen.insert(*column), "column {column} given twice");
                    prop_assert!(pairs.iter().any(|p| p.0 == row && p.1 == *column));
                }
            }
            // Maximality: no unassigned row has a pair with an untaken column.
            for &(row, column, _) in &pairs {
                prop_assert!(result[row].is_some() || seen.contains(&column));
            }
        }
    }
}
