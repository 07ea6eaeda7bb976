//! Playing a GitLab manual job: it then starts when the pipeline gets to it, with the job
//! inputs a person gave (checked against their declarations). `tess run --job` and a runner
//! leased a played job both go through here.

use super::PlannedJob;
use crate::spec::gitlab::inputs::{InputForm, job_input_value};

/// Plays `job`: a `when: manual` job becomes an ordinary one and `inputs` (name, text) set its
/// job inputs. A job that is not manual only takes the inputs.
pub fn play(job: &mut PlannedJob, inputs: &[(String, String)]) -> Result<(), String> {
    let key = job.key.clone();
    let Some(gl) = std::sync::Arc::make_mut(&mut job.spec).gitlab.as_mut() else {
        return match inputs.first() {
            Some((name, _)) => Err(format!(
                "job `{key}` has no input `{name}` (its inputs: none)"
            )),
            None => Ok(()),
        };
    };
    if gl.when == "manual" {
        gl.when = "on_success".into();
    }
    for (name, text) in inputs {
        let Some(spec) = gl.inputs.get(name) else {
            let names: Vec<&str> = gl.inputs.keys().map(String::as_str).collect();
            let known = if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            };
            let hint = crate::diag::did_you_mean(name, names.iter().copied())
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            return Err(format!(
                "job `{key}` has no input `{name}` (its inputs: {known}){hint}"
            ));
        };
        let value = job_input_value(spec, text).map_err(|why| format!("input `{name}`: {why}"))?;
        gl.input_values.insert(name.clone(), value);
    }
    Ok(())
}

/// The job inputs a play form asks for, as declared.
pub fn input_forms(job: &PlannedJob) -> Vec<InputForm> {
    job.spec
        .gitlab
        .as_ref()
        .map(|gl| {
            gl.inputs
                .iter()
                .map(|(name, spec)| spec.form(name))
                .collect()
        })
        .unwrap_or_default()
}
