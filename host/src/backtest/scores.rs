//! Threshold-free measures of a score against the labels: the area under
//! the precision-recall curve (average precision), the area under the ROC
//! curve, and precision and recall at fixed alert budgets (the top 0.1 %,
//! 0.5 % and 1 % of transactions by score) — how a fraud team judges a
//! model before it picks a threshold.
//!
//! Tied scores are one threshold: they enter the curves together, as
//! scikit-learn's `average_precision_score` and `roc_auc_score` count
//! them. At a budget, the top transactions are taken by score, ties in
//! transaction id order, so the same input gives the same figures.

use serde::Serialize;

/// The alert budgets reported: shares of the scored transactions.
pub const ALERT_BUDGETS: [f64; 3] = [0.001, 0.005, 0.01];

/// How well a score ranks fraud above legitimate transactions.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ScoreQuality {
    /// Labelled transactions with a score, and how many are fraud.
    pub scored: u64,
    pub fraud: u64,
    /// Average precision (the area under the precision-recall curve);
    /// absent without fraud.
    pub pr_auc: Option<f64>,
    /// Area under the ROC curve; absent unless there are both fraud and
    /// legitimate transactions.
    pub roc_auc: Option<f64>,
    /// Precision and recall when the top share of transactions is alerted.
    pub at_budget: Vec<AtBudget>,
}

/// Precision and recall at one alert budget.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AtBudget {
    /// The share of scored transactions alerted (0.005 is the top 0.5 %).
    pub budget: f64,
    /// How many that is: the share rounded up, at least one.
    pub alerts: u64,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
}

/// The labelled scores of one ranking, collected as transactions are decided.
#[derive(Debug, Default)]
pub(super) struct Scores {
    /// (score, fraud, transaction id).
    items: Vec<(f64, bool, String)>,
}

impl Scores {
    pub(super) fn add(&mut self, score: f64, fraud: bool, transaction_id: &str) {
        if score.is_nan() {
            return;
        }
        self.items.push((score, fraud, transaction_id.to_owned()));
    }

    pub(super) fn finish(mut self) -> ScoreQuality {
        // Highest score first; ties by transaction id, for the budgets.
        self.items.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.2.cmp(&b.2)));
        let n = self.items.len() as u64;
        let fraud = self.items.iter().filter(|i| i.1).count() as u64;
        let legit = n - fraud;
        // Walk the thresholds (one per distinct score), from the top.
        let (mut tp, mut fp) = (0u64, 0u64);
        let (mut ap, mut roc) = (0.0, 0.0);
        let mut i = 0;
        while i < self.items.len() {
            let score = self.items[i].0;
            let (tp_before, fp_before) = (tp, fp);
            while i < self.items.len() && self.items[i].0 == score {
                if self.items[i].1 {
                    tp += 1
                } else {
                    fp += 1
                }
                i += 1;
            }
            if fraud > 0 {
                ap += (tp - tp_before) as f64 / fraud as f64 * (tp as f64 / (tp + fp) as f64);
            }
            if fraud > 0 && legit > 0 {
                // A trapezoid of the ROC curve between the two thresholds.
                let dx = (fp - fp_before) as f64 / legit as f64;
                roc += dx * (tp + tp_before) as f64 / 2.0 / fraud as f64;
            }
        }
        let at_budget = ALERT_BUDGETS
            .iter()
            .map(|&budget| {
                let alerts = ((budget * n as f64).ceil() as u64).clamp(1, n.max(1)).min(n);
                let caught = self.items.iter().take(alerts as usize).filter(|i| i.1).count() as u64;
                AtBudget {
                    budget,
                    alerts,
                    precision: (alerts > 0).then(|| round6(caught as f64 / alerts as f64)),
                    recall: (fraud > 0).then(|| round6(caught as f64 / fraud as f64)),
                }
            })
            .collect();
        ScoreQuality {
            scored: n,
            fraud,
            pr_auc: (fraud > 0).then(|| round6(ap)),
            roc_auc: (fraud > 0 && legit > 0).then(|| round6(roc)),
            at_budget,
        }
    }
}

/// Six decimals: the same figure on every machine.
fn round6(x: f64) -> f64 {
    (x * 1_000_000.0).round() / 1_000_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quality(items: &[(f64, bool)]) -> ScoreQuality {
        let mut s = Scores::default();
        for (i, &(score, fraud)) in items.iter().enumerate() {
            s.add(score, fraud, &format!("tx-{i:04}"));
        }
        s.finish()
    }

    #[test]
    fn a_perfect_ranking_has_both_areas_one_and_a_reversed_one_none_of_roc() {
        let perfect = quality(&[(0.9, true), (0.8, true), (0.3, false), (0.1, false)]);
        assert_eq!((perfect.pr_auc, perfect.roc_auc), (Some(1.0), Some(1.0)));
        let reversed = quality(&[(0.1, true), (0.2, true), (0.8, false), (0.9, false)]);
        assert_eq!(reversed.roc_auc, Some(0.0));
        // Precision at the fraud's ranks 3 and 4: 1/3 and 2/4.
        assert_eq!(reversed.pr_auc, Some(round6((1.0 / 3.0 + 0.5) / 2.0)));
    }

    #[test]
    fn the_areas_match_scikit_learns_on_a_small_ranking_with_ties() {
        // sklearn.metrics.average_precision_score / roc_auc_score of
        // y = [1,0,1,1,0,0,1,0], s = [.9,.9,.7,.5,.5,.3,.2,.1]:
        // 0.5845238… and 0.625.
        let items = [
            (0.9, true),
            (0.9, false),
            (0.7, true),
            (0.5, true),
            (0.5, false),
            (0.3, false),
            (0.2, true),
            (0.1, false),
        ];
        let q = quality(&items);
        assert_eq!(q.pr_auc, Some(0.584524));
        assert_eq!(q.roc_auc, Some(0.625));
    }

    #[test]
    fn a_budget_alerts_the_top_share_rounded_up() {
        let mut items: Vec<(f64, bool)> = (0..1000).map(|i| (f64::from(i) / 1000.0, i >= 996)).collect();
        items.push((2.0, false));
        let q = quality(&items);
        let half = &q.at_budget[1];
        assert_eq!((half.budget, half.alerts), (0.005, 6));
        // The top six: the false 2.0, then 999, 998, 997, 996 (fraud) and 995.
        assert_eq!(half.precision, Some(round6(4.0 / 6.0)));
        assert_eq!(half.recall, Some(1.0));
        assert_eq!(q.at_budget[0].alerts, 2, "0.1 % of 1001, rounded up");
    }
}
