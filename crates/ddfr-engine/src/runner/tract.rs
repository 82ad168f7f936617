//! The pure-Rust backend: tract-onnx, also what the browser build uses.

use std::sync::Arc;

use tract_onnx::prelude::*;

use super::{ModelRunner, RunnerOptions, Tensor};
use crate::EngineError;

type Plan = Arc<TypedRunnableModel>;

/// One ONNX graph optimised by tract for the declared input shape. A `None` dimension in
/// [`RunnerOptions::input_shape`] (the batch) becomes a symbol, so any batch size runs.
#[derive(Debug)]
pub(super) struct TractRunner {
    model_id: String,
    plan: Plan,
}

impl TractRunner {
    pub(super) fn open(
        model_id: &str,
        bytes: &[u8],
        options: &RunnerOptions,
    ) -> Result<Self, EngineError> {
        let fail = |e: TractError| EngineError::Inference {
            model: model_id.to_owned(),
            source: e.into_boxed_dyn_error(),
        };
        let mut reader = bytes;
        let mut model = tract_onnx::onnx().model_for_read(&mut reader).map_err(fail)?;
        if !options.input_shape.is_empty() {
            let batch = model.symbols.sym("N");
            let dims: TVec<TDim> = options
                .input_shape
                .iter()
                .map(|d| match d {
                    Some(n) => TDim::from(*n as i64),
                    None => TDim::from(batch.clone()),
                })
                .collect();
            model = model.with_input_fact(0, f32::fact(dims).into()).map_err(fail)?;
        }
        let plan = model.into_optimized().map_err(fail)?.into_runnable().map_err(fail)?;
        Ok(Self { model_id: model_id.to_owned(), plan })
    }
}

impl ModelRunner for TractRunner {
    fn run(&self, input: &Tensor) -> Result<Vec<Tensor>, EngineError> {
        let fail = |e: TractError| EngineError::Inference {
            model: self.model_id.clone(),
            source: e.into_boxed_dyn_error(),
        };
        let tensor =
            tract_onnx::prelude::Tensor::from_shape(&input.shape, &input.data).map_err(fail)?;
        let outputs = self.plan.run(tvec!(tensor.into())).map_err(fail)?;
        outputs
            .iter()
            .map(|value| {
                let view = value.to_plain_array_view::<f32>().map_err(fail)?;
                Ok(Tensor::new(view.shape().to_vec(), view.iter().copied().collect()))
            })
            .collect()
    }
}
