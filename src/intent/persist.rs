//! Saving and loading a model directory: model.safetensors (f16), tokenizer.json, labels.json, config.json.
//!
//! Loading goes through `candle_nn::VarBuilder::from_buffered_safetensors`, which parses from an owned buffer
//! (no mmap, so no `unsafe`), and every shape is checked against config.json: a corrupt or truncated file is
//! an `Err`, never a panic or a silently wrong model.

use super::features::{FeatureLayout, Featurizer, GROUPS};
use super::infer::Member;
use super::{IntentError, IntentModel, TrainConfig, TrainReport};
use candle_core::{DType, Device};
use half::f16;
use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};
use std::path::Path;

const FORMAT_VERSION: u32 = 1;

/// Contents of config.json: everything besides weights, tokenizer and labels needed to rebuild the model.
#[derive(Serialize, Deserialize)]
struct SavedConfig {
    format_version: u32,
    train_config: TrainConfig,
    layout: FeatureLayout,
    members: usize,
    embed_dim: usize,
    hidden_dim: usize,
    n_labels: usize,
    oos_label: Option<String>,
    temperature: f32,
    threshold: f32,
    validation_metrics: TrainReport,
    /// SHA-256 of the built-in lexicon the model was trained with (see `Lexicon::digest`), if it used one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lexicon_sha256: Option<String>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> IntentError + '_ {
    move |source| IntentError::Io { path: path.to_path_buf(), source }
}

fn f16_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|&x| f16::from_f32(x).to_le_bytes()).collect()
}

/// The five tensors of member `i` with their shapes, in a fixed order.
fn member_tensors(i: usize, m: &Member) -> Vec<(String, Vec<usize>, &[f32])> {
    vec![
        (format!("m{i}.emb"), vec![m.rows(), m.d], &m.emb[..]),
        (format!("m{i}.w1"), vec![GROUPS * m.d + m.lex, m.h], &m.w1[..]),
        (format!("m{i}.b1"), vec![m.h], &m.b1[..]),
        (format!("m{i}.w2"), vec![m.h, m.c], &m.w2[..]),
        (format!("m{i}.b2"), vec![m.c], &m.b2[..]),
    ]
}

impl IntentModel {
    /// Writes the four files. Bytes depend only on the data and the seed (no timestamps, sorted keys).
    pub fn save(&self, dir: &Path) -> Result<(), IntentError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let idf = self.featurizer.idf();
        let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = vec![("idf".into(), vec![idf.len()], f16_bytes(idf))];
        for (i, m) in self.members.iter().enumerate() {
            for (name, shape, data) in member_tensors(i, m) {
                owned.push((name, shape, f16_bytes(data)));
            }
        }
        let views = owned
            .iter()
            .map(|(n, s, b)| TensorView::new(Dtype::F16, s.clone(), b).map(|v| (n.clone(), v)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| IntentError::Corrupt(e.to_string()))?;
        let st = safetensors::tensor::serialize(views, None).map_err(|e| IntentError::Corrupt(e.to_string()))?;
        let first = self.members.first().ok_or_else(|| IntentError::Corrupt("model has no members".into()))?;
        let cfg = SavedConfig {
            format_version: FORMAT_VERSION,
            train_config: self.cfg.clone(),
            layout: self.featurizer.layout(),
            members: self.members.len(),
            embed_dim: first.d,
            hidden_dim: first.h,
            n_labels: self.labels.len(),
            oos_label: self.oos_label.clone(),
            temperature: self.temperature,
            threshold: self.threshold,
            validation_metrics: self.report.clone(),
            lexicon_sha256: self.lexicon.map(|l| l.digest().to_string()),
        };
        let files: [(&str, Vec<u8>); 4] = [
            ("model.safetensors", st),
            ("tokenizer.json", self.featurizer.tokenizer_json()?.into_bytes()),
            ("labels.json", serde_json::to_vec_pretty(&self.labels)?),
            ("config.json", serde_json::to_vec_pretty(&cfg)?),
        ];
        for (name, bytes) in files {
            let path = dir.join(name);
            std::fs::write(&path, bytes).map_err(io_err(&path))?;
        }
        Ok(())
    }

    /// Reads a directory written by `save`.
    pub fn load(dir: &Path) -> Result<Self, IntentError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(io_err(&path))
        };
        let cfg: SavedConfig = serde_json::from_slice(&read("config.json")?)?;
        if cfg.format_version != FORMAT_VERSION {
            return Err(IntentError::Corrupt(format!("unsupported format_version {}", cfg.format_version)));
        }
        let labels: Vec<String> = serde_json::from_slice(&read("labels.json")?)?;
        if labels.len() != cfg.n_labels || labels.len() < 2 || !labels.windows(2).all(|w| w[0] < w[1]) {
            return Err(IntentError::Corrupt("labels.json does not match config.json".into()));
        }
        let tok = String::from_utf8(read("tokenizer.json")?).map_err(|e| IntentError::Corrupt(e.to_string()))?;
        let mut featurizer = Featurizer::from_json(&tok, &cfg.layout, false)?;
        let vb =
            candle_nn::VarBuilder::from_buffered_safetensors(read("model.safetensors")?, DType::F32, &Device::Cpu)?;
        featurizer.set_idf(vb.get(featurizer.n_rows(), "idf")?.to_vec1::<f32>()?)?;
        let (rows, d, h, c) = (featurizer.n_rows(), cfg.embed_dim, cfg.hidden_dim, labels.len());
        if cfg.members == 0 || d == 0 || h == 0 {
            return Err(IntentError::Corrupt("config.json has empty dimensions".into()));
        }
        let lexicon = match (cfg.train_config.lexicon, &cfg.lexicon_sha256) {
            (false, None) => None,
            (true, Some(digest)) => {
                let lex = super::Lexicon::shipped()?;
                if lex.digest() != digest {
                    return Err(IntentError::Corrupt(
                        "model was trained with another lexicon than this build's".into(),
                    ));
                }
                Some(lex)
            }
            _ => return Err(IntentError::Corrupt("config.json: lexicon flag and digest disagree".into())),
        };
        let lex = lexicon.map_or(0, |l| l.dims());
        let mut members = Vec::with_capacity(cfg.members);
        for i in 0..cfg.members {
            // `get` checks the stored shape against the expected one and converts f16 → f32.
            let get = |name: &str, shape: &[usize]| -> Result<Vec<f32>, IntentError> {
                Ok(vb.get(shape, &format!("m{i}.{name}"))?.flatten_all()?.to_vec1::<f32>()?)
            };
            members.push(Member::from_f32(
                d,
                h,
                c,
                lex,
                get("emb", &[rows, d])?,
                get("w1", &[GROUPS * d + lex, h])?,
                get("b1", &[h])?,
                get("w2", &[h, c])?,
                get("b2", &[c])?,
            )?);
        }
        let t_ok = cfg.temperature.is_finite() && cfg.temperature > 0.0;
        if !t_ok || !cfg.threshold.is_finite() {
            return Err(IntentError::Corrupt("bad temperature or threshold".into()));
        }
        let oos_index = cfg.oos_label.as_deref().and_then(|o| labels.binary_search_by(|x| x.as_str().cmp(o)).ok());
        Ok(IntentModel {
            featurizer,
            lexicon,
            members,
            labels,
            oos_label: cfg.oos_label,
            oos_index,
            temperature: cfg.temperature,
            threshold: cfg.threshold,
            cfg: cfg.train_config,
            report: cfg.validation_metrics,
        })
    }
}
