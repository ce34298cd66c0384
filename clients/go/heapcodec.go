package gateway

import (
	"bytes"
	"errors"

	pb "github.com/spead2-rs/spead2-gateway-go/gen/gatewayv1"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	protobuf "google.golang.org/protobuf/proto"
)

// Field numbers read by hand: Heap.items and Item.data.
const (
	heapItemsField protowire.Number = 15
	itemDataField  protowire.Number = 15
)

var errTruncated = errors.New("spead2 gateway: truncated or malformed Heap message")

// protoCodec is grpc's own codec, for requests and for any message but a Heap.
var protoCodec = encoding.GetCodecV2(proto.Name)

// heapCodec is the codec of Subscribe calls. protobuf-go copies every bytes field out of the
// message it decodes (it never aliases them), and grpc's default codec decodes from a pooled
// buffer that it reuses; so each item's data would cost one more copy than it needs. This
// codec copies the message once, out of grpc's buffers, and decodes it with parseHeap, which
// leaves the item data in that copy. Requests are encoded as the default codec does.
type heapCodec struct{}

func (heapCodec) Name() string { return proto.Name }

func (heapCodec) Marshal(v any) (mem.BufferSlice, error) {
	return protoCodec.Marshal(v)
}

func (heapCodec) Unmarshal(data mem.BufferSlice, v any) error {
	heap, ok := v.(*pb.Heap)
	if !ok {
		return protoCodec.Unmarshal(data, v)
	}
	return parseHeap(materialize(data), heap)
}

// materialize copies data into one new slice. Unlike data.Materialize, it does not zero the
// slice first (bytes.Join allocates without zeroing), which for a 1 MiB message costs about
// as much as the copy.
func materialize(data mem.BufferSlice) []byte {
	parts := make([][]byte, len(data))
	for i, buffer := range data {
		parts[i] = buffer.ReadOnlyData()
	}
	return bytes.Join(parts, nil)
}

// parseHeap decodes buf into heap as proto.Unmarshal would, except that Item.data is not
// copied when it is at least half of buf: it then references buf, so that no item keeps
// alive more than twice its own size. Every other field is decoded by protobuf itself.
func parseHeap(buf []byte, heap *pb.Heap) error {
	others, items, err := splitFields(buf, heapItemsField)
	if err != nil {
		return err
	}
	if err := protobuf.Unmarshal(others, heap); err != nil {
		return err
	}
	for _, body := range items {
		fields, data, err := splitFields(body, itemDataField)
		if err != nil {
			return err
		}
		item := &pb.Item{}
		if err := protobuf.Unmarshal(fields, item); err != nil {
			return err
		}
		if len(data) > 0 { // a singular field given more than once: the last one counts
			last := data[len(data)-1]
			if 2*len(last) < len(buf) {
				last = bytes.Clone(last)
			}
			item.Data = last
		}
		heap.Items = append(heap.Items, item)
	}
	return nil
}

// splitFields scans the fields of msg: every field but the length-delimited field number
// wanted is appended to others (in order, tags included), and the values of that field are
// returned as slices of msg.
func splitFields(msg []byte, wanted protowire.Number) (others []byte, values [][]byte, err error) {
	for len(msg) > 0 {
		number, wireType, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return nil, nil, errTruncated
		}
		if number == wanted && wireType == protowire.BytesType {
			value, m := protowire.ConsumeBytes(msg[n:])
			if m < 0 {
				return nil, nil, errTruncated
			}
			values = append(values, value)
			msg = msg[n+m:]
			continue
		}
		m := protowire.ConsumeFieldValue(number, wireType, msg[n:])
		if m < 0 {
			return nil, nil, errTruncated
		}
		others = append(others, msg[:n+m]...)
		msg = msg[n+m:]
	}
	return others, values, nil
}
