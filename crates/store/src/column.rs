//! Enums stored as text columns. Each has one table of variant ⇄ text, from which
//! its `ToSql` and `FromSql` come, so SQL stays plain text (portable to PostgreSQL)
//! and the spelling lives in one place per type.

/// Implements `as_str`, `ToSql` and `FromSql` for a fieldless enum from its
/// variant ⇄ text table. Reading any other text fails: the store wrote it, so
/// it means corrupt data, not a default.
macro_rules! text_column {
    ($ty:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            /// The text stored for this value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $text),+
                }
            }
        }

        impl rusqlite::types::ToSql for $ty {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(self.as_str().into())
            }
        }

        impl rusqlite::types::FromSql for $ty {
            fn column_result(
                value: rusqlite::types::ValueRef<'_>,
            ) -> rusqlite::types::FromSqlResult<Self> {
                match value.as_str()? {
                    $($text => Ok($ty::$variant),)+
                    other => Err(rusqlite::types::FromSqlError::Other(
                        format!("unknown {} {other:?}", stringify!($ty)).into(),
                    )),
                }
            }
        }
    };
}

pub(crate) use text_column;
