//! The pure-Rust backend: tract-onnx, also what the browser build uses.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tract_onnx::prelude::*;

use super::{ModelRunner, RunnerOptions, Tensor};
use crate::EngineError;

type Plan = Arc<TypedRunnableModel>;

/// How the graph was planned.
#[derive(Debug)]
enum Plans {
    /// One plan for every input: all dimensions fixed, or only the batch varies (a symbol).
    Single(Plan),
    /// Spatial dimensions vary (SCRFD): one plan per concrete input shape, made on first use.
    /// tract cannot optimise some resize ops over symbolic heights and widths.
    PerShape { model: Box<InferenceModel>, plans: Mutex<HashMap<Vec<usize>, Plan>> },
}

/// One ONNX graph optimised by tract for the declared input shape.
#[derive(Debug)]
pub(super) struct TractRunner {
    model_id: String,
    plans: Plans,
}

fn fail(model_id: &str, e: TractError) -> EngineError {
    EngineError::Inference { model: model_id.to_owned(), source: e.into_boxed_dyn_error() }
}

fn plan_for(model: InferenceModel, dims: TVec<TDim>) -> TractResult<Plan> {
    model.with_input_fact(0, f32::fact(dims).into())?.into_optimized()?.into_runnable()
}

impl TractRunner {
    pub(super) fn open(
        model_id: &str,
        bytes: &[u8],
        options: &RunnerOptions,
    ) -> Result<Self, EngineError> {
        let mut reader = bytes;
        let model =
            tract_onnx::onnx().model_for_read(&mut reader).map_err(|e| fail(model_id, e))?;
        let shape = &options.input_shape;
        let spatial_dynamic = shape.iter().skip(1).any(Option::is_none);
        let plans = if spatial_dynamic {
            Plans::PerShape { model: Box::new(model), plans: Mutex::new(HashMap::new()) }
        } else if shape.is_empty() {
            Plans::Single(
                model
                    .into_optimized()
                    .and_then(|m| m.into_runnable())
                    .map_err(|e| fail(model_id, e))?,
            )
        } else {
            let batch = model.symbols.sym("N");
            let dims: TVec<TDim> = shape
                .iter()
                .map(|d| d.map_or_else(|| TDim::from(batch.clone()), |n| TDim::from(n as i64)))
                .collect();
            Plans::Single(plan_for(model, dims).map_err(|e| fail(model_id, e))?)
        };
        Ok(Self { model_id: model_id.to_owned(), plans })
    }

    fn plan(&self, shape: &[usize]) -> Result<Plan, EngineError> {
        match &self.plans {
            Plans::Single(plan) => Ok(Arc::clone(plan)),
            Plans::PerShape { model, plans } => {
                let mut plans = plans.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                if let Some(plan) = plans.get(shape) {
                    return Ok(Arc::clone(plan));
                }
                let dims: TVec<TDim> = shape.iter().map(|&d| TDim::from(d as i64)).collect();
                let plan =
                    plan_for(model.as_ref().clone(), dims).map_err(|e| fail(&self.model_id, e))?;
                plans.insert(shape.to_vec(), Arc::clone(&plan));
                Ok(plan)
            }
        }
    }
}

impl ModelRunner for TractRunner {
    fn run(&self, input: &Tensor) -> Result<Vec<Tensor>, EngineError> {
        let plan = self.plan(&input.shape)?;
        let tensor = tract_onnx::prelude::Tensor::from_shape(&input.shape, &input.data)
            .map_err(|e| fail(&self.model_id, e))?;
        let outputs = plan.run(tvec!(tensor.into())).map_err(|e| fail(&self.model_id, e))?;
        outputs
            .iter()
            .map(|value| {
                let view =
                    value.to_plain_array_view::<f32>().map_err(|e| fail(&self.model_id, e))?;
                Ok(Tensor::new(view.shape().to_vec(), view.iter().copied().collect()))
            })
            .collect()
    }
}
