//! Enums the monitor keeps in `text` columns: a heartbeat's stored status, a
//! flip's two ends, an alert's delivery state.
//!
//! The columns stay `text` (with a `CHECK` where the schema has one), so they read
//! plainly in psql and the SQL can compare them with literals. The conversion
//! happens once, at the driver: the enums below are `ToSql` and `FromSql` for
//! `text` and `varchar`, so the Rust code never builds or matches those strings
//! by hand, and a value the code does not know fails the read instead of being
//! silently skipped.

/// Gives a fieldless enum `ALL`, `as_str`, `from_text`, `Display`, and `ToSql` /
/// `FromSql` for `text` and `varchar`, from one table of variant ↔ stored text.
macro_rules! text_enum {
    ($ty:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            /// Every value, in declaration order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The text the column holds.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $text,)+
                }
            }

            /// The value `text` stands for, if any.
            pub fn from_text(text: &str) -> Option<Self> {
                match text {
                    $($text => Some($ty::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::tokio_postgres::types::ToSql for $ty {
            fn to_sql(
                &self,
                ty: &::tokio_postgres::types::Type,
                out: &mut ::bytes::BytesMut,
            ) -> Result<::tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>>
            {
                self.as_str().to_sql(ty, out)
            }

            ::tokio_postgres::types::accepts!(TEXT, VARCHAR);
            ::tokio_postgres::types::to_sql_checked!();
        }

        impl<'a> ::tokio_postgres::types::FromSql<'a> for $ty {
            fn from_sql(
                ty: &::tokio_postgres::types::Type,
                raw: &'a [u8],
            ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
                let text = <&str as ::tokio_postgres::types::FromSql>::from_sql(ty, raw)?;
                Self::from_text(text).ok_or_else(|| {
                    format!("{text:?} is not a {}", stringify!($ty)).into()
                })
            }

            ::tokio_postgres::types::accepts!(TEXT, VARCHAR);
        }
    };
}

pub(crate) use text_enum;
