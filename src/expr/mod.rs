//! GitHub Actions expressions (`${{ }}`): parsing with offsets, static checks per location,
//! and evaluation with GitHub's coercions, where unknown (runtime-only) values propagate.

mod check;
mod eval;
mod parse;
mod template;
mod value;

pub use check::{Location, check};
pub use eval::{Context, Status, evaluate, truthiness};
pub use parse::{Expr, ExprError, parse};
pub use template::{Segment, TemplateError, parse_template};
pub use value::Value;
