//! Matrix expansion with GitHub's rules: product → exclude → include. An include merges
//! into every original combination whose original values it doesn't change; otherwise it
//! becomes a new combination. Added values may be overwritten by later includes.

use indexmap::IndexMap;
use serde_json::Value as Json;

pub type Combination = IndexMap<String, Json>;

/// GitHub's limit on combinations per matrix.
pub const MAX_COMBINATIONS: usize = 256;

/// Expands an evaluated matrix object. Errors are user-facing messages.
pub fn expand(matrix: &serde_json::Map<String, Json>) -> Result<Vec<Combination>, String> {
    let dims: Vec<(&String, &Json)> = matrix
        .iter()
        .filter(|(k, _)| *k != "include" && *k != "exclude")
        .collect();
    let mut combos: Vec<Combination> = Vec::new();
    if !dims.is_empty() {
        combos.push(Combination::new());
        for (key, values) in &dims {
            let values = match values {
                Json::Array(a) if !a.is_empty() => a.clone(),
                Json::Array(_) => {
                    return Err(format!("matrix vector `{key}` does not contain any values"));
                }
                other => vec![(*other).clone()],
            };
            if combos.len().saturating_mul(values.len()) > MAX_COMBINATIONS * 16 {
                return Err(format!(
                    "matrix has more than {MAX_COMBINATIONS} combinations"
                ));
            }
            combos = combos
                .into_iter()
                .flat_map(|c| {
                    values.iter().map(move |v| {
                        let mut c = c.clone();
                        c.insert((*key).clone(), v.clone());
                        c
                    })
                })
                .collect();
        }
    }
    for exclude in list(matrix.get("exclude"), "exclude")? {
        combos.retain(|c| !exclude.iter().all(|(k, v)| c.get(k) == Some(v)));
    }
    let originals = combos.len();
    let dim_keys: Vec<&String> = dims.iter().map(|(k, _)| *k).collect();
    for include in list(matrix.get("include"), "include")? {
        let mut merged = false;
        for combo in combos.iter_mut().take(originals) {
            let compatible = include
                .iter()
                .all(|(k, v)| !dim_keys.contains(&k) || combo.get(k) == Some(v));
            if compatible {
                for (k, v) in include {
                    combo.insert(k.clone(), v.clone());
                }
                merged = true;
            }
        }
        if !merged {
            combos.push(
                include
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            );
        }
    }
    if combos.len() > MAX_COMBINATIONS {
        return Err(format!(
            "matrix produces {} combinations; GitHub allows at most {MAX_COMBINATIONS}",
            combos.len()
        ));
    }
    Ok(combos)
}

fn list<'a>(
    value: Option<&'a Json>,
    what: &str,
) -> Result<Vec<&'a serde_json::Map<String, Json>>, String> {
    match value {
        None | Some(Json::Null) => Ok(Vec::new()),
        Some(Json::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_object()
                    .ok_or_else(|| format!("matrix `{what}` entries must be mappings"))
            })
            .collect(),
        Some(_) => Err(format!("matrix `{what}` must be a list of mappings")),
    }
}

/// GitHub's display suffix: the combination's values, e.g. `(stable, ubuntu-latest)`.
pub fn display_values(combo: &Combination) -> String {
    let values: Vec<String> = combo.values().map(display_value).collect();
    format!("({})", values.join(", "))
}

fn display_value(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Null => String::new(),
        Json::Object(map) => {
            let inner: Vec<String> = map.values().map(display_value).collect();
            inner.join(", ")
        }
        other => other.to_string(),
    }
}
