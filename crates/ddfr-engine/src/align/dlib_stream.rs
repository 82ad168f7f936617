//! A bounds-checked cursor over dlib's `serialize()` byte stream, for reading `.dat` models.
//!
//! dlib writes every integer as a control byte followed by its magnitude in little-endian
//! bytes: the low nibble of the control byte is the number of magnitude bytes (1 to 8), bit 7
//! is the sign, and bits 4 to 6 are reserved. Floating-point values are written as a
//! `float_details` pair of such integers, a 64-bit mantissa and a 16-bit exponent, with the
//! value `mantissa * 2^exponent` (and three reserved exponents for ±infinity and NaN).
//! Containers are written as an element count followed by the elements; a `matrix` is written
//! as `-rows, -cols` (negated to mark the current format) followed by its elements in
//! row-major order.
//!
//! Every read checks the remaining bytes first and reports the byte offset of what was wrong,
//! so a truncated or hostile file yields [`EngineError::DlibFormat`], never a panic or an
//! allocation larger than the file.

use crate::EngineError;

/// Bits of an integer's control byte that hold the number of magnitude bytes.
const INT_SIZE_MASK: u8 = 0x0F;
/// Bit of an integer's control byte that marks a negative value.
const INT_NEGATIVE_BIT: u8 = 0x80;
/// Control-byte bits dlib reserves; an old ASCII float always has one of them set.
const INT_RESERVED_BITS: u8 = 0x70;
/// The most magnitude bytes an integer can have (dlib serializes at most 64-bit integers).
const INT_MAX_BYTES: usize = 8;
/// Exponent value by which `float_details` encodes +infinity.
const FLOAT_EXPONENT_INF: i64 = 32000;
/// Exponent value by which `float_details` encodes -infinity.
const FLOAT_EXPONENT_NEG_INF: i64 = 32001;
/// Exponent value by which `float_details` encodes NaN.
const FLOAT_EXPONENT_NAN: i64 = 32002;
/// The fewest bytes any serialized scalar (an integer or a float) occupies: a control byte and
/// one magnitude byte. Element counts are checked against this before anything is allocated.
pub const MIN_SCALAR_BYTES: usize = 2;
/// The fewest bytes a serialized float occupies: mantissa and exponent, two bytes each.
pub const MIN_FLOAT_BYTES: usize = 2 * MIN_SCALAR_BYTES;

/// A read position in a dlib serialization stream.
#[derive(Debug, Clone)]
pub struct DlibStream<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> DlibStream<'a> {
    /// A stream positioned at the first byte of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    /// The offset of the next byte to be read.
    pub fn offset(&self) -> usize {
        self.pos
    }

    /// How many bytes are left.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// An error at `offset`.
    pub fn error_at(offset: usize, message: &'static str) -> EngineError {
        EngineError::DlibFormat { offset, message }
    }

    /// An error at the current position.
    pub fn error(&self, message: &'static str) -> EngineError {
        Self::error_at(self.pos, message)
    }

    /// One raw byte (dlib writes `char` and `unsigned char` this way).
    pub fn read_byte(&mut self) -> Result<u8, EngineError> {
        let byte = *self.bytes.get(self.pos).ok_or_else(|| self.error("unexpected end of data"))?;
        self.pos += 1;
        Ok(byte)
    }

    /// `len` raw bytes.
    pub fn read_bytes(&mut self, len: usize) -> Result<&'a [u8], EngineError> {
        if len > self.remaining() {
            return Err(self.error("unexpected end of data"));
        }
        let bytes = &self.bytes[self.pos..self.pos + len];
        self.pos += len;
        Ok(bytes)
    }

    /// Reads an integer's control byte and magnitude: `(negative, magnitude)`.
    fn read_int_parts(&mut self, max_bytes: usize) -> Result<(bool, u64), EngineError> {
        let start = self.pos;
        let control = self.read_byte()?;
        let negative = control & INT_NEGATIVE_BIT != 0;
        let size = usize::from(control & INT_SIZE_MASK);
        if size == 0 || size > max_bytes.min(INT_MAX_BYTES) {
            return Err(Self::error_at(start, "integer has an invalid size in its control byte"));
        }
        let magnitude = self
            .read_bytes(size)
            .map_err(|_| Self::error_at(start, "integer is truncated"))?
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        Ok((negative, magnitude))
    }

    /// An unsigned integer of at most `max_bytes` bytes (dlib's `unsigned long` is 8 on
    /// 64-bit Linux). Like dlib, a set sign bit makes the size invalid.
    fn read_unsigned(&mut self, max_bytes: usize) -> Result<u64, EngineError> {
        let start = self.pos;
        let (negative, magnitude) = self.read_int_parts(max_bytes)?;
        if negative {
            return Err(Self::error_at(start, "unsigned integer has its sign bit set"));
        }
        Ok(magnitude)
    }

    /// A signed integer of at most `max_bytes` bytes.
    fn read_signed(&mut self, max_bytes: usize) -> Result<i64, EngineError> {
        let start = self.pos;
        let (negative, magnitude) = self.read_int_parts(max_bytes)?;
        let value = i64::try_from(magnitude)
            .map_err(|_| Self::error_at(start, "integer overflows 64 bits"))?;
        Ok(if negative { -value } else { value })
    }

    /// An `unsigned long` / `uint64`.
    pub fn read_u64(&mut self) -> Result<u64, EngineError> {
        self.read_unsigned(8)
    }

    /// A `long` / `int64`.
    pub fn read_i64(&mut self) -> Result<i64, EngineError> {
        self.read_signed(8)
    }

    /// An `int` (at most 4 magnitude bytes, as dlib checks against `sizeof(int)`).
    pub fn read_i32(&mut self) -> Result<i32, EngineError> {
        let start = self.pos;
        let value = self.read_signed(4)?;
        i32::try_from(value).map_err(|_| Self::error_at(start, "integer overflows 32 bits"))
    }

    /// A floating-point value in dlib's binary `float_details` form, as `f64`.
    pub fn read_f64(&mut self) -> Result<f64, EngineError> {
        let start = self.pos;
        let control =
            *self.bytes.get(self.pos).ok_or_else(|| self.error("unexpected end of data"))?;
        if control & INT_RESERVED_BITS != 0 {
            return Err(self.error("float uses dlib's old ASCII format, which is not supported"));
        }
        let mantissa = self.read_i64()?;
        let exponent = self.read_signed(2)?;
        Ok(match exponent {
            FLOAT_EXPONENT_INF => f64::INFINITY,
            FLOAT_EXPONENT_NEG_INF => f64::NEG_INFINITY,
            FLOAT_EXPONENT_NAN => f64::NAN,
            e if e > FLOAT_EXPONENT_NAN => {
                return Err(Self::error_at(start, "float has an unknown special exponent"));
            }
            // Scaling in two halves keeps each power of two finite and non-zero across the
            // whole i16 exponent range, so only the final product over- or underflows, as
            // with ldexp.
            e => {
                let half = (e / 2) as i32;
                mantissa as f64 * 2f64.powi(half) * 2f64.powi(e as i32 - half)
            }
        })
    }

    /// A `float`. dlib converts through `ldexp((float)mantissa, exponent)`; the mantissa of a
    /// value that was a `float` when written has at most 24 significant bits, so going through
    /// `f64` gives the identical value.
    pub fn read_f32(&mut self) -> Result<f32, EngineError> {
        Ok(self.read_f64()? as f32)
    }

    /// A container's element count, checked so that `count` elements of at least
    /// `min_item_bytes` bytes each fit in what is left of the stream.
    pub fn read_len(&mut self, min_item_bytes: usize) -> Result<usize, EngineError> {
        let start = self.pos;
        let count = self.read_u64()?;
        let count = usize::try_from(count)
            .map_err(|_| Self::error_at(start, "element count does not fit in memory"))?;
        let needed = count.checked_mul(min_item_bytes.max(1));
        match needed {
            Some(needed) if needed <= self.remaining() => Ok(count),
            _ => Err(Self::error_at(start, "element count exceeds the remaining data")),
        }
    }

    /// A `std::vector<T>`: a count, then each element read by `read_item`.
    pub fn read_vec<T>(
        &mut self,
        min_item_bytes: usize,
        mut read_item: impl FnMut(&mut Self) -> Result<T, EngineError>,
    ) -> Result<Vec<T>, EngineError> {
        let count = self.read_len(min_item_bytes)?;
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            items.push(read_item(self)?);
        }
        Ok(items)
    }

    /// A `dlib::matrix<float>` header and elements: `(rows, cols, row-major values)`.
    pub fn read_matrix_f32(&mut self) -> Result<(usize, usize, Vec<f32>), EngineError> {
        let start = self.pos;
        let rows = self.read_i64()?;
        let cols = self.read_i64()?;
        // The current format negates both dimensions; an old file stores them positive.
        let (rows, cols) = (rows.unsigned_abs(), cols.unsigned_abs());
        let count = rows
            .checked_mul(cols)
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| n.checked_mul(MIN_FLOAT_BYTES).is_some_and(|b| b <= self.remaining()))
            .ok_or_else(|| Self::error_at(start, "matrix size exceeds the remaining data"))?;
        let mut values = Vec::with_capacity(count);
        for _ in 0..count {
            values.push(self.read_f32()?);
        }
        // Both fit in usize: their product did.
        Ok((rows as usize, cols as usize, values))
    }

    /// A `dlib::matrix<float,0,1>` column vector (a single-column matrix).
    pub fn read_column_f32(&mut self) -> Result<Vec<f32>, EngineError> {
        let start = self.pos;
        let (rows, cols, values) = self.read_matrix_f32()?;
        if cols != 1 && rows * cols != 0 {
            return Err(Self::error_at(start, "expected a column vector"));
        }
        Ok(values)
    }

    /// A `dlib::vector<float,2>`: x then y.
    pub fn read_point_f32(&mut self) -> Result<[f32; 2], EngineError> {
        Ok([self.read_f32()?, self.read_f32()?])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes `value` as dlib's `pack_int` does, for round-trip tests.
    fn pack(value: i64) -> Vec<u8> {
        let negative = value < 0;
        let mut magnitude = value.unsigned_abs();
        let mut out = vec![0u8];
        loop {
            out.push((magnitude & 0xFF) as u8);
            magnitude >>= 8;
            if magnitude == 0 {
                break;
            }
        }
        out[0] = (out.len() - 1) as u8 | if negative { INT_NEGATIVE_BIT } else { 0 };
        out
    }

    #[test]
    fn integers_round_trip() {
        for value in [0i64, 1, -1, 255, 256, -70000, i64::MAX, i64::MIN + 1] {
            let bytes = pack(value);
            let mut s = DlibStream::new(&bytes);
            assert_eq!(s.read_i64().unwrap(), value);
            assert_eq!(s.remaining(), 0);
        }
    }

    #[test]
    fn floats_decode_mantissa_and_exponent() {
        // 0.75 = 3 * 2^-2; the model file's first initial-shape value is 0xc6b86e * 2^-24.
        let mut bytes = pack(3);
        bytes.extend(pack(-2));
        bytes.extend([0x03, 0x6e, 0xb8, 0xc6, 0x81, 0x18]);
        let mut s = DlibStream::new(&bytes);
        assert_eq!(s.read_f32().unwrap(), 0.75);
        assert_eq!(s.read_f32().unwrap(), 0xc6b86e as f32 / (1u32 << 24) as f32);
    }

    #[test]
    fn special_floats() {
        for (exponent, check) in [
            (FLOAT_EXPONENT_INF, f64::is_infinite as fn(f64) -> bool),
            (FLOAT_EXPONENT_NAN, f64::is_nan),
        ] {
            let mut bytes = pack(0);
            bytes.extend(pack(exponent));
            assert!(check(DlibStream::new(&bytes).read_f64().unwrap()));
        }
    }

    #[test]
    fn malformed_input_is_an_error_with_offset() {
        // Size nibble of zero.
        assert!(matches!(
            DlibStream::new(&[0x00]).read_u64(),
            Err(EngineError::DlibFormat { offset: 0, .. })
        ));
        // Truncated magnitude.
        assert!(DlibStream::new(&[0x04, 1, 2]).read_u64().is_err());
        // int with 5 magnitude bytes.
        assert!(DlibStream::new(&[0x05, 1, 2, 3, 4, 5]).read_i32().is_err());
        // A huge element count is rejected before allocating.
        let mut bytes = pack(i64::MAX);
        bytes.extend([0u8; 16]);
        assert!(DlibStream::new(&bytes).read_vec(1, |s| s.read_byte()).is_err());
        // A huge matrix likewise.
        let mut bytes = pack(-(1 << 40));
        bytes.extend(pack(-(1 << 20)));
        assert!(DlibStream::new(&bytes).read_matrix_f32().is_err());
        // Old ASCII float format.
        assert!(DlibStream::new(b"1.5 ").read_f64().is_err());
    }
}
