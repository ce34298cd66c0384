package gateway

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"unsafe"
)

// elementType is a parsed numpy array-protocol type string of a scalar type.
type elementType struct {
	order binary.ByteOrder // nil: not a recognised scalar type (decoded as raw bytes)
	kind  byte             // 'u', 'i', 'f', 'c', 'b'
	size  int              // bytes per element
}

// parseDtype recognises the scalar dtypes that decode into Go slices. Anything else
// (structured types as JSON, strings, float16, ...) is reported with order == nil.
func parseDtype(text string) elementType {
	if len(text) < 3 {
		return elementType{}
	}
	var order binary.ByteOrder
	switch text[0] {
	case '<', '|':
		order = binary.LittleEndian
	case '>':
		order = binary.BigEndian
	case '=':
		// numpy never emits '=' in dtype.str; the gateway's host is little-endian in practice.
		order = binary.LittleEndian
	default:
		return elementType{}
	}
	size, err := strconv.Atoi(text[2:])
	if err != nil {
		return elementType{}
	}
	kind := text[1]
	ok := false
	switch kind {
	case 'u', 'i':
		ok = size == 1 || size == 2 || size == 4 || size == 8
	case 'f':
		ok = size == 4 || size == 8
	case 'c':
		ok = size == 8 || size == 16
	case 'b':
		ok = size == 1
	}
	if !ok {
		return elementType{}
	}
	return elementType{order: order, kind: kind, size: size}
}

// elementCount is the product of the shape (1 for a scalar), or an error on overflow.
func elementCount(shape []uint64) (uint64, error) {
	count := uint64(1)
	for _, dim := range shape {
		if dim != 0 && count > math.MaxUint64/dim {
			return 0, fmt.Errorf("shape %v overflows", shape)
		}
		count *= dim
	}
	return count, nil
}

// decodeValue turns item bytes into a Go slice for the common dtypes, or nil for any other
// dtype. An error means the bytes do not match dtype and shape.
func decodeValue(dtype string, shape []uint64, data []byte) (any, error) {
	et := parseDtype(dtype)
	if et.order == nil {
		return nil, nil
	}
	count, err := elementCount(shape)
	if err != nil {
		return nil, err
	}
	if count > uint64(len(data)) || count*uint64(et.size) != uint64(len(data)) {
		return nil, fmt.Errorf("data has %d bytes but dtype %q and shape %v need %d elements of %d bytes",
			len(data), dtype, shape, count, et.size)
	}
	return decodeElements(et, int(count), data), nil
}

func decodeElements(et elementType, n int, data []byte) any {
	o := et.order
	switch {
	case et.kind == 'b':
		out := make([]bool, n)
		for i := range out {
			out[i] = data[i] != 0
		}
		return out
	case et.kind == 'u' && et.size == 1:
		// A view of data, not a copy (documented on Item.Value). The capacity is cut so that
		// appending to the view never writes past the item.
		return data[:n:n]
	case et.kind == 'i' && et.size == 1:
		return int8View(data[:n])
	case et.kind == 'u' && et.size == 2:
		return mapN(n, func(i int) uint16 { return o.Uint16(data[2*i:]) })
	case et.kind == 'i' && et.size == 2:
		return mapN(n, func(i int) int16 { return int16(o.Uint16(data[2*i:])) })
	case et.kind == 'u' && et.size == 4:
		return mapN(n, func(i int) uint32 { return o.Uint32(data[4*i:]) })
	case et.kind == 'i' && et.size == 4:
		return mapN(n, func(i int) int32 { return int32(o.Uint32(data[4*i:])) })
	case et.kind == 'u' && et.size == 8:
		return mapN(n, func(i int) uint64 { return o.Uint64(data[8*i:]) })
	case et.kind == 'i' && et.size == 8:
		return mapN(n, func(i int) int64 { return int64(o.Uint64(data[8*i:])) })
	case et.kind == 'f' && et.size == 4:
		return mapN(n, func(i int) float32 { return math.Float32frombits(o.Uint32(data[4*i:])) })
	case et.kind == 'f' && et.size == 8:
		return mapN(n, func(i int) float64 { return math.Float64frombits(o.Uint64(data[8*i:])) })
	case et.kind == 'c' && et.size == 8:
		return mapN(n, func(i int) complex64 {
			re := math.Float32frombits(o.Uint32(data[8*i:]))
			im := math.Float32frombits(o.Uint32(data[8*i+4:]))
			return complex(re, im)
		})
	default: // 'c', 16
		return mapN(n, func(i int) complex128 {
			re := math.Float64frombits(o.Uint64(data[16*i:]))
			im := math.Float64frombits(o.Uint64(data[16*i+8:]))
			return complex(re, im)
		})
	}
}

// int8View is data seen as int8 elements, without a copy.
func int8View(data []byte) []int8 {
	if len(data) == 0 {
		return []int8{}
	}
	// Sound: int8 and uint8 have the same size and alignment and every bit pattern is a
	// valid int8, so the n bytes of data are exactly n valid int8 values; the result keeps
	// data's backing array alive and covers no byte outside data[:len(data)].
	return unsafe.Slice((*int8)(unsafe.Pointer(unsafe.SliceData(data))), len(data))
}

func mapN[T any](n int, f func(int) T) []T {
	out := make([]T, n)
	for i := range out {
		out[i] = f(i)
	}
	return out
}

// EncodeValue lays out a Go slice (or scalar) of a common type as item data, in
// little-endian order, and returns the matching numpy dtype string. Supported: bool, int8-64,
// uint8-64, float32/64, complex64/128, as scalars or slices.
func EncodeValue(value any) (dtype string, data []byte, err error) {
	le := binary.LittleEndian
	switch v := value.(type) {
	case []bool:
		data = make([]byte, len(v))
		for i, b := range v {
			if b {
				data[i] = 1
			}
		}
		return "|b1", data, nil
	case []uint8:
		return "|u1", append([]byte(nil), v...), nil
	case []int8:
		data = make([]byte, len(v))
		for i, x := range v {
			data[i] = byte(x)
		}
		return "|i1", data, nil
	case []uint16:
		return "<u2", putN(len(v), 2, func(b []byte, i int) { le.PutUint16(b, v[i]) }), nil
	case []int16:
		return "<i2", putN(len(v), 2, func(b []byte, i int) { le.PutUint16(b, uint16(v[i])) }), nil
	case []uint32:
		return "<u4", putN(len(v), 4, func(b []byte, i int) { le.PutUint32(b, v[i]) }), nil
	case []int32:
		return "<i4", putN(len(v), 4, func(b []byte, i int) { le.PutUint32(b, uint32(v[i])) }), nil
	case []uint64:
		return "<u8", putN(len(v), 8, func(b []byte, i int) { le.PutUint64(b, v[i]) }), nil
	case []int64:
		return "<i8", putN(len(v), 8, func(b []byte, i int) { le.PutUint64(b, uint64(v[i])) }), nil
	case []float32:
		return "<f4", putN(len(v), 4, func(b []byte, i int) { le.PutUint32(b, math.Float32bits(v[i])) }), nil
	case []float64:
		return "<f8", putN(len(v), 8, func(b []byte, i int) { le.PutUint64(b, math.Float64bits(v[i])) }), nil
	case []complex64:
		return "<c8", putN(len(v), 8, func(b []byte, i int) {
			le.PutUint32(b, math.Float32bits(real(v[i])))
			le.PutUint32(b[4:], math.Float32bits(imag(v[i])))
		}), nil
	case []complex128:
		return "<c16", putN(len(v), 16, func(b []byte, i int) {
			le.PutUint64(b, math.Float64bits(real(v[i])))
			le.PutUint64(b[8:], math.Float64bits(imag(v[i])))
		}), nil
	case bool, uint8, int8, uint16, int16, uint32, int32, uint64, int64, float32, float64, complex64, complex128:
		return EncodeValue(scalarSlice(v))
	default:
		return "", nil, fmt.Errorf("cannot encode a %T; pass raw bytes with an explicit dtype", value)
	}
}

func scalarSlice(v any) any {
	switch x := v.(type) {
	case bool:
		return []bool{x}
	case uint8:
		return []uint8{x}
	case int8:
		return []int8{x}
	case uint16:
		return []uint16{x}
	case int16:
		return []int16{x}
	case uint32:
		return []uint32{x}
	case int32:
		return []int32{x}
	case uint64:
		return []uint64{x}
	case int64:
		return []int64{x}
	case float32:
		return []float32{x}
	case float64:
		return []float64{x}
	case complex64:
		return []complex64{x}
	default:
		return []complex128{x.(complex128)}
	}
}

func putN(n, size int, put func([]byte, int)) []byte {
	data := make([]byte, n*size)
	for i := 0; i < n; i++ {
		put(data[i*size:], i)
	}
	return data
}
