//! Scalars and enums of the API that are not rows: `Decimal`, `Difficulty`.

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};
use rust_decimal::Decimal as Dec;

/// A decimal amount as a string with two decimals, e.g. `"49.90"`. Numbers are
/// accepted on input too. Malformed input is kept and refused by the resolver, so the
/// error is BAD_USER_INPUT naming the field rather than a bare coercion failure.
#[derive(Clone, Debug, PartialEq)]
pub struct Decimal(pub Result<Dec, String>);

impl Decimal {
    pub fn money(d: Dec) -> Self {
        let mut d = d;
        d.rescale(2);
        Self(Ok(d))
    }
}

#[Scalar(name = "Decimal")]
impl ScalarType for Decimal {
    fn parse(value: Value) -> InputValueResult<Self> {
        let raw = match &value {
            Value::String(s) => s.trim().to_owned(),
            Value::Number(n) => n.to_string(),
            _ => return Err(InputValueError::expected_type(value)),
        };
        Ok(Self(Dec::from_str_exact(&raw).map_err(|_| raw)))
    }

    fn to_value(&self) -> Value {
        match &self.0 {
            Ok(d) => Value::String(d.to_string()),
            Err(raw) => Value::String(raw.clone()),
        }
    }
}

/// How demanding a course is (the stored enum itself).
pub use entity::Difficulty;
