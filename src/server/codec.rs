//! The protobuf codec of every loket service: tonic-prost's, except that a request that does not decode is the
//! caller's mistake (INVALID_ARGUMENT with a `BadRequest` naming the field) rather than INTERNAL, which tells
//! clients the server broke. Wired into the generated code by `codec_path` in `build.rs`.

use std::marker::PhantomData;

use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

use super::status::status_of;
use crate::error::Error;
use crate::knowledge::validate::Violation;

/// `tonic_prost::ProstCodec` with [`LoketDecoder`] in place of its decoder.
#[derive(Debug, Clone)]
pub struct LoketCodec<T, U> {
    inner: ProstCodec<T, U>,
}

impl<T, U> Default for LoketCodec<T, U> {
    fn default() -> Self {
        Self { inner: ProstCodec::default() }
    }
}

impl<T, U> Codec for LoketCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = LoketDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        self.inner.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        LoketDecoder { _message: PhantomData }
    }
}

/// Decodes like prost, answering a malformed message with INVALID_ARGUMENT.
#[derive(Debug, Clone)]
pub struct LoketDecoder<U> {
    _message: PhantomData<U>,
}

impl<U: Message + Default> Decoder for LoketDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf).map(Some).map_err(|error| status_of(malformed(&error)))
    }

    fn buffer_settings(&self) -> BufferSettings {
        ProstDecoder::<U>::default().buffer_settings()
    }
}

/// The field error for a message prost could not decode. prost keeps where it failed only in the error's text,
/// "failed to decode Protobuf message: Inner.field: Outer.field: reason" (innermost first), so the field path is
/// read from there: `outer.field`. Without a field (a broken frame) the whole message is named.
fn malformed(error: &prost::DecodeError) -> Error {
    let text = error.to_string();
    let mut rest = text.strip_prefix("failed to decode Protobuf message: ").unwrap_or(&text);
    let mut fields = Vec::new();
    while let Some((head, tail)) = rest.split_once(": ") {
        let Some((message, field)) = head.split_once('.') else { break };
        let ident = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ident(message) || !ident(field) {
            break;
        }
        fields.push(field.to_owned());
        rest = tail;
    }
    fields.reverse();
    let field = if fields.is_empty() { "request".to_owned() } else { fields.join(".") };
    let reason = match rest {
        "invalid string value: data is not UTF-8 encoded" => "is not valid UTF-8".to_owned(),
        other => format!("is not valid protobuf ({other})"),
    };
    Error::InvalidFields(vec![Violation { field, reason }])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_field_path_comes_from_the_decode_error() {
        // A string field holding bytes that are not UTF-8: field 2 (text) of SendMessageRequest.
        let bytes = [0x12, 0x02, 0xff, 0xfe];
        let error = super::super::pb::SendMessageRequest::decode(&bytes[..]).unwrap_err();
        let Error::InvalidFields(violations) = malformed(&error) else { panic!("a field error") };
        assert_eq!(violations[0].field, "text");
        assert_eq!(violations[0].reason, "is not valid UTF-8");

        // Nested: CreateFaqRequest.faq (1) -> Faq.category (2).
        let bytes = [0x0a, 0x04, 0x12, 0x02, 0xc3, 0x28];
        let error = super::super::pb::CreateFaqRequest::decode(&bytes[..]).unwrap_err();
        let Error::InvalidFields(violations) = malformed(&error) else { panic!("a field error") };
        assert_eq!(violations[0].field, "faq.category");

        // Truncated: a length running past the end.
        let error = super::super::pb::SendMessageRequest::decode(&[0x12, 0x09, b'a'][..]).unwrap_err();
        let Error::InvalidFields(violations) = malformed(&error) else { panic!("a field error") };
        assert!(violations[0].reason.starts_with("is not valid protobuf"), "{violations:?}");
    }
}
