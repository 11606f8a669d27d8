//! Tier assignment: pure, so every threshold rule is unit-tested without a database.
//!
//! Clients are ranked by activity score, highest first; equal scores share a rank
//! (competition ranking: 1, 2, 2, 4) and therefore a tier, so two clients with the
//! same activity are never split across a boundary.
//!
//! - **Percentile** thresholds (`top = 10`, `mid = 40`): a client is `top` when the
//!   share of clients strictly more active than it is below 10%, `mid` when below
//!   10% + 40%, else `micro`. With distinct scores that is exactly the top 10%, the
//!   next 40% and the rest (rounded up at each boundary); ties go to the higher tier.
//! - **Absolute** thresholds (`top = 500`, `mid = 50`): `top` from a score of 500,
//!   `mid` from 50, else `micro`.
//!
//! Either way a client with no activity (score ≤ 0) is `micro`: being as idle as
//! everyone else does not make a client "top".

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::config::error::ConfigError;

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Top,
    Mid,
    Micro,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::Top, Tier::Mid, Tier::Micro];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Top => "top",
            Tier::Mid => "mid",
            Tier::Micro => "micro",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Tier {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tier::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("'{s}' is not a tier: expected top, mid or micro"))
    }
}

/// Where the tier boundaries lie (`[segments.thresholds]`).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase", deny_unknown_fields)]
pub enum Thresholds {
    /// Shares of clients, in percent: `top` of them are top, the next `mid` mid.
    Percentile { top: f64, mid: f64 },
    /// Minimum scores: `top` and above is top, `mid` and above mid.
    Absolute { top: f64, mid: f64 },
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds::Percentile {
            top: 10.0,
            mid: 40.0,
        }
    }
}

impl Thresholds {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let field = "segments.thresholds";
        match *self {
            Thresholds::Percentile { top, mid } => {
                if !(top.is_finite() && mid.is_finite() && top >= 0.0 && mid >= 0.0) {
                    return Err(ConfigError::new(field, "percentiles must be 0 or more"));
                }
                if top + mid > 100.0 {
                    return Err(ConfigError::new(
                        field,
                        format!("top + mid is {}%, more than 100%", top + mid),
                    ));
                }
            }
            Thresholds::Absolute { top, mid } => {
                if !(top.is_finite() && mid.is_finite()) {
                    return Err(ConfigError::new(field, "scores must be finite numbers"));
                }
                if mid > top {
                    return Err(ConfigError::new(
                        field,
                        format!("mid ({mid}) is above top ({top})"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// One client's place in a snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked {
    pub client_id: String,
    pub score: f64,
    /// 1 = most active; equal scores share a rank.
    pub rank: i32,
    pub tier: Tier,
}

/// Ranks `scores` and assigns each client its tier; the output is sorted by rank,
/// then client id.
pub fn assign(scores: Vec<(String, f64)>, thresholds: Thresholds) -> Vec<Ranked> {
    let mut scores = scores;
    scores.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let n = scores.len() as f64;
    let mut out = Vec::with_capacity(scores.len());
    let mut rank = 0;
    let mut previous: Option<f64> = None;
    for (index, (client_id, score)) in scores.into_iter().enumerate() {
        if previous != Some(score) {
            rank = index as i32 + 1;
            previous = Some(score);
        }
        let tier = if score <= 0.0 {
            Tier::Micro
        } else {
            match thresholds {
                Thresholds::Percentile { top, mid } => {
                    // Clients strictly more active, as a percentage of all clients.
                    let above = f64::from(rank - 1) / n * 100.0;
                    if above < top {
                        Tier::Top
                    } else if above < top + mid {
                        Tier::Mid
                    } else {
                        Tier::Micro
                    }
                }
                Thresholds::Absolute { top, mid } => {
                    if score >= top {
                        Tier::Top
                    } else if score >= mid {
                        Tier::Mid
                    } else {
                        Tier::Micro
                    }
                }
            }
        };
        out.push(Ranked {
            client_id,
            score,
            rank,
            tier,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clients(scores: &[f64]) -> Vec<(String, f64)> {
        scores
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("c{i:02}"), *s))
            .collect()
    }

    fn count(ranked: &[Ranked], tier: Tier) -> usize {
        ranked.iter().filter(|r| r.tier == tier).count()
    }

    fn tier_of(ranked: &[Ranked], id: &str) -> Tier {
        ranked.iter().find(|r| r.client_id == id).unwrap().tier
    }

    #[test]
    fn default_percentiles_give_the_top_tenth_then_the_next_forty_percent() {
        let ranked = assign(
            clients(&(1..=20).map(f64::from).collect::<Vec<_>>()),
            Thresholds::default(),
        );
        assert_eq!(count(&ranked, Tier::Top), 2);
        assert_eq!(count(&ranked, Tier::Mid), 8);
        assert_eq!(count(&ranked, Tier::Micro), 10);
        // c19 has score 20, the highest.
        assert_eq!(ranked[0].client_id, "c19");
        assert_eq!(ranked[0].rank, 1);
        assert_eq!(tier_of(&ranked, "c18"), Tier::Top);
        assert_eq!(tier_of(&ranked, "c17"), Tier::Mid);
        assert_eq!(tier_of(&ranked, "c10"), Tier::Mid);
        assert_eq!(tier_of(&ranked, "c09"), Tier::Micro);
    }

    #[test]
    fn custom_percentiles_move_the_boundaries() {
        let ranked = assign(
            clients(&(1..=10).map(f64::from).collect::<Vec<_>>()),
            Thresholds::Percentile {
                top: 30.0,
                mid: 20.0,
            },
        );
        assert_eq!(count(&ranked, Tier::Top), 3);
        assert_eq!(count(&ranked, Tier::Mid), 2);
        assert_eq!(count(&ranked, Tier::Micro), 5);
    }

    #[test]
    fn tied_clients_share_a_rank_and_a_tier() {
        // Ten clients; the two best are tied, so both are top although 10% is one.
        let ranked = assign(
            clients(&[9.0, 9.0, 5.0, 4.0, 3.0, 2.0, 1.0, 1.0, 1.0, 1.0]),
            Thresholds::default(),
        );
        assert_eq!(ranked[0].rank, 1);
        assert_eq!(ranked[1].rank, 1);
        assert_eq!(ranked[2].rank, 3);
        assert_eq!(count(&ranked, Tier::Top), 2);
        // The four tied at 1.0 share rank 7: 6 of 10 above is past 50%, all micro.
        assert!(ranked[6..]
            .iter()
            .all(|r| r.rank == 7 && r.tier == Tier::Micro));
    }

    #[test]
    fn absolute_thresholds_compare_scores_with_inclusive_minimums() {
        let ranked = assign(
            clients(&[1000.0, 500.0, 499.0, 50.0, 49.9, 0.0]),
            Thresholds::Absolute {
                top: 500.0,
                mid: 50.0,
            },
        );
        assert_eq!(tier_of(&ranked, "c00"), Tier::Top);
        assert_eq!(tier_of(&ranked, "c01"), Tier::Top);
        assert_eq!(tier_of(&ranked, "c02"), Tier::Mid);
        assert_eq!(tier_of(&ranked, "c03"), Tier::Mid);
        assert_eq!(tier_of(&ranked, "c04"), Tier::Micro);
        assert_eq!(tier_of(&ranked, "c05"), Tier::Micro);
    }

    #[test]
    fn inactive_clients_are_micro_even_when_everyone_is_inactive() {
        let ranked = assign(clients(&[0.0, 0.0, 0.0]), Thresholds::default());
        assert_eq!(count(&ranked, Tier::Micro), 3);
        let ranked = assign(clients(&[0.0]), Thresholds::Absolute { top: 0.0, mid: 0.0 });
        assert_eq!(ranked[0].tier, Tier::Micro);
    }

    #[test]
    fn no_clients_give_an_empty_snapshot() {
        assert!(assign(Vec::new(), Thresholds::default()).is_empty());
    }

    #[test]
    fn thresholds_read_from_toml_in_both_forms_and_bad_ones_are_named() {
        #[derive(Deserialize)]
        struct Wrap {
            thresholds: Thresholds,
        }
        let w: Wrap =
            toml::from_str("[thresholds]\nmode = \"percentile\"\ntop = 5\nmid = 45\n").unwrap();
        assert_eq!(
            w.thresholds,
            Thresholds::Percentile {
                top: 5.0,
                mid: 45.0
            }
        );
        let w: Wrap =
            toml::from_str("[thresholds]\nmode = \"absolute\"\ntop = 100\nmid = 10.5\n").unwrap();
        assert_eq!(
            w.thresholds,
            Thresholds::Absolute {
                top: 100.0,
                mid: 10.5
            }
        );
        assert!(
            toml::from_str::<Wrap>("[thresholds]\nmode = \"median\"\ntop = 1\nmid = 1\n").is_err()
        );

        let err = Thresholds::Percentile {
            top: 60.0,
            mid: 50.0,
        }
        .validate()
        .unwrap_err();
        assert_eq!(err.field, "segments.thresholds");
        assert!(Thresholds::Absolute {
            top: 10.0,
            mid: 20.0
        }
        .validate()
        .is_err());
        assert!(Thresholds::default().validate().is_ok());
    }
}
