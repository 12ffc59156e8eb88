//! Input validation: every refusal is BAD_USER_INPUT naming the field,
//! and runs before anything is written.

use rust_decimal::Decimal;

use super::types::scalars;
use crate::{
    domain::organization::is_valid_slug,
    error::{AppError, AppResult},
};

/// Upper bound on prices (exclusive), matching `numeric(10,2)`.
const MAX_PRICE: i64 = 100_000_000;

/// Trimmed text of `min..=max` characters.
pub fn text(field: &str, value: &str, min: usize, max: usize) -> AppResult<String> {
    let t = value.trim();
    let n = t.chars().count();
    if n < min {
        return Err(AppError::bad_input(field, format!("`{field}` must not be empty")));
    }
    if n > max {
        return Err(AppError::bad_input(field, format!("`{field}` must be at most {max} characters (it has {n})")));
    }
    Ok(t.to_owned())
}

/// A title, name or organization name: 1–500 characters after trimming.
pub fn name(field: &str, value: &str) -> AppResult<String> {
    text(field, value, 1, 500)
}

/// Optional free text: `None` stays `None`, blank becomes `None`.
pub fn optional(field: &str, value: Option<&str>, max: usize) -> AppResult<Option<String>> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => text(field, v, 1, max).map(Some),
    }
}

/// A description: at most 10,000 characters.
pub fn description(field: &str, value: Option<&str>) -> AppResult<Option<String>> {
    optional(field, value, 10_000)
}

pub fn price(field: &str, value: &scalars::Decimal) -> AppResult<Decimal> {
    let d = match &value.0 {
        Ok(d) => *d,
        Err(raw) => return Err(AppError::bad_input(field, format!("`{field}` is not a decimal number: `{raw}`"))),
    };
    if d.is_sign_negative() && !d.is_zero() {
        return Err(AppError::bad_input(field, format!("`{field}` must not be negative")));
    }
    if d.normalize().scale() > 2 {
        return Err(AppError::bad_input(field, format!("`{field}` has at most 2 decimals")));
    }
    if d >= Decimal::from(MAX_PRICE) {
        return Err(AppError::bad_input(field, format!("`{field}` must be less than 100000000")));
    }
    let mut d = d.abs();
    d.rescale(2);
    Ok(d)
}

pub fn non_negative(field: &str, value: f64) -> AppResult<f64> {
    if !value.is_finite() || value < 0.0 {
        return Err(AppError::bad_input(field, format!("`{field}` must be a number ≥ 0")));
    }
    Ok(value)
}

pub fn position(field: &str, value: i32) -> AppResult<i32> {
    if value < 0 {
        return Err(AppError::bad_input(field, format!("`{field}` must be ≥ 0")));
    }
    Ok(value)
}

pub fn slug(field: &str, value: &str) -> AppResult<String> {
    let s = value.trim();
    if !is_valid_slug(s) {
        return Err(AppError::bad_input(
            field,
            format!("`{field}` must match ^[a-z0-9](-?[a-z0-9])*$ and be at most 63 characters"),
        ));
    }
    Ok(s.to_owned())
}

/// A page size within `1..=max`.
pub fn first(value: i32, max: i32) -> AppResult<u64> {
    if !(1..=max).contains(&value) {
        return Err(AppError::bad_input("first", format!("`first` must be between 1 and {max}")));
    }
    Ok(value as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr as _;

    fn dec(s: &str) -> scalars::Decimal {
        scalars::Decimal(Decimal::from_str_exact(s).map_err(|_| s.to_owned()))
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(name("t", "  Rust  ").unwrap(), "Rust");
        assert!(name("t", "   ").is_err());
        assert!(name("t", &"é".repeat(500)).is_ok());
        let e = name("input.title", &"x".repeat(501)).unwrap_err();
        assert!(matches!(e, AppError::BadUserInput { ref field, .. } if field == "input.title"));
    }

    #[test]
    fn prices() {
        assert_eq!(price("p", &dec("49.9")).unwrap().to_string(), "49.90");
        assert_eq!(price("p", &dec("0")).unwrap().to_string(), "0.00");
        assert_eq!(price("p", &dec("99999999.99")).unwrap().to_string(), "99999999.99");
        assert_eq!(price("p", &dec("1.500")).unwrap().to_string(), "1.50");
        for bad in ["-0.01", "1.005", "100000000", "abc", "1e3x"] {
            assert!(price("p", &dec(bad)).is_err(), "{bad}");
        }
        let _ = Decimal::from_str("1").unwrap();
    }

    #[test]
    fn numbers_positions_slugs_and_pages() {
        assert!(non_negative("d", -0.5).is_err());
        assert!(non_negative("d", f64::NAN).is_err());
        assert!(position("p", -1).is_err());
        assert!(slug("s", "Bad Slug").is_err());
        assert_eq!(slug("s", "good-slug-1").unwrap(), "good-slug-1");
        assert!(first(0, 100).is_err());
        assert!(first(101, 100).is_err());
        assert_eq!(first(100, 100).unwrap(), 100);
    }
}
