//! Database and table names as PostgreSQL identifiers.
//!
//! A micro database is a schema and a micro table is a table, each named exactly as given
//! (case and punctuation kept): every name is double-quoted in SQL, with `"` doubled, so no
//! name is ever read as SQL. Names PostgreSQL cannot take are rejected, never altered: two
//! different micro names must never land on one table.

/// The longest identifier PostgreSQL keeps (`NAMEDATALEN - 1` bytes): a longer one would be
/// cut silently, so that two names sharing their first 63 bytes would share a table.
pub const MAX_NAME_BYTES: usize = 63;

/// `name` quoted as a PostgreSQL identifier, after [`check`].
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Why `name` (the `what` of a scope: `database` or `table`) cannot be a PostgreSQL
/// identifier, or `Ok`.
pub fn check(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!(
            "the {what} name is empty; give one in the operation's scope or the store's \
             default {what}"
        ));
    }
    if name.contains('\0') {
        return Err(format!(
            "{what} {name:?} contains a NUL character, which PostgreSQL names cannot hold; \
             remove it"
        ));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "{what} {name:?} is {} bytes long; PostgreSQL names are at most {MAX_NAME_BYTES} \
             bytes (a longer one would be cut): use a shorter name",
            name.len()
        ));
    }
    if what == "database" {
        // Schemas PostgreSQL keeps for itself: `pg_*` cannot be made, and the catalogs are
        // not a place for application tables.
        if name.starts_with("pg_") || name == "information_schema" {
            return Err(format!(
                "database {name:?} is a name PostgreSQL reserves for its own schemas \
                 (pg_*, information_schema); choose another"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_doubles_quotes_and_keeps_everything_else() {
        assert_eq!(quote("micro"), "\"micro\"");
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
        assert_eq!(
            quote("x\"; DROP TABLE t; --"),
            "\"x\"\"; DROP TABLE t; --\""
        );
        assert_eq!(quote("Mixed Case.ü"), "\"Mixed Case.ü\"");
    }

    #[test]
    fn names_postgres_cannot_take_are_rejected() {
        assert!(check("table", "ok name").is_ok());
        assert!(check("table", &"é".repeat(31)).is_ok());
        assert!(
            check("table", &"é".repeat(32))
                .unwrap_err()
                .contains("64 bytes")
        );
        assert!(check("table", "").unwrap_err().contains("empty"));
        assert!(check("table", "a\0b").unwrap_err().contains("NUL"));
        assert!(check("database", "pg_x").unwrap_err().contains("reserves"));
        assert!(check("table", "pg_x").is_ok());
        assert!(check("database", "information_schema").is_err());
    }
}
