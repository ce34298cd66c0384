package gateway

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"net"
	"reflect"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	pb "github.com/spead2-rs/spead2-gateway-go/gen/gatewayv1"
)

// fakeGateway sends scripted Heap messages to every subscriber and records the token seen.
type fakeGateway struct {
	pb.UnimplementedGatewayServer
	messages []*pb.Heap
	token    chan string
}

func (f *fakeGateway) Subscribe(req *pb.SubscribeRequest, srv grpc.ServerStreamingServer[pb.Heap]) error {
	md, _ := metadata.FromIncomingContext(srv.Context())
	auth := ""
	if v := md.Get("authorization"); len(v) > 0 {
		auth = v[0]
	}
	f.token <- auth
	if req.GetStream() != "s" {
		return status.Error(codes.NotFound, "no such stream")
	}
	if err := srv.SendHeader(metadata.Pairs("x-queue-depth", "7", "x-subscriber-id", "3")); err != nil {
		return err
	}
	for _, m := range f.messages {
		if err := srv.Send(m); err != nil {
			return err
		}
	}
	return nil
}

func startFake(t *testing.T, messages []*pb.Heap, opts ...Option) (*Client, *fakeGateway) {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	server := grpc.NewServer()
	fake := &fakeGateway{messages: messages, token: make(chan string, 16)}
	pb.RegisterGatewayServer(server, fake)
	go func() { _ = server.Serve(lis) }()
	t.Cleanup(server.Stop)
	dialer := func(context.Context, string) (net.Conn, error) { return lis.Dial() }
	opts = append(opts, WithDialOptions(grpc.WithContextDialer(dialer)))
	client, err := Dial("passthrough:///bufnet", opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return client, fake
}

func receiveAll(t *testing.T, client *Client) ([]*Heap, error) {
	t.Helper()
	sub, err := client.Subscribe(context.Background(), "s")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var heaps []*Heap
	for {
		h, err := sub.Recv()
		if err != nil {
			return heaps, err
		}
		heaps = append(heaps, h)
	}
}

// dtypeCase is bytes written by hand in a given byte order and the Go value they must give.
type dtypeCase struct {
	dtype string
	data  []byte
	want  any
}

func dtypeCases() []dtypeCase {
	be, le := binary.BigEndian, binary.LittleEndian
	u16 := func(o binary.ByteOrder, v ...uint16) []byte {
		b := make([]byte, 2*len(v))
		for i, x := range v {
			o.PutUint16(b[2*i:], x)
		}
		return b
	}
	u32 := func(o binary.ByteOrder, v ...uint32) []byte {
		b := make([]byte, 4*len(v))
		for i, x := range v {
			o.PutUint32(b[4*i:], x)
		}
		return b
	}
	u64 := func(o binary.ByteOrder, v ...uint64) []byte {
		b := make([]byte, 8*len(v))
		for i, x := range v {
			o.PutUint64(b[8*i:], x)
		}
		return b
	}
	f32 := math.Float32bits
	f64 := math.Float64bits
	var cases []dtypeCase
	for _, o := range []struct {
		c string
		o binary.ByteOrder
	}{{"<", le}, {">", be}} {
		cases = append(cases,
			dtypeCase{o.c + "u2", u16(o.o, 1, 0xfffe), []uint16{1, 0xfffe}},
			dtypeCase{o.c + "i2", u16(o.o, 0x8000, 5), []int16{-32768, 5}},
			dtypeCase{o.c + "u4", u32(o.o, 0xdeadbeef, 2), []uint32{0xdeadbeef, 2}},
			dtypeCase{o.c + "i4", u32(o.o, 0xffffffff, 7), []int32{-1, 7}},
			dtypeCase{o.c + "u8", u64(o.o, 1<<63+9, 3), []uint64{1<<63 + 9, 3}},
			dtypeCase{o.c + "i8", u64(o.o, 1<<63, 11), []int64{math.MinInt64, 11}},
			dtypeCase{o.c + "f4", u32(o.o, f32(1.5), f32(-0.25)), []float32{1.5, -0.25}},
			dtypeCase{o.c + "f8", u64(o.o, f64(math.Pi), f64(-1e300)), []float64{math.Pi, -1e300}},
			dtypeCase{o.c + "c8", u32(o.o, f32(1), f32(-2), f32(0.5), f32(3)), []complex64{complex(1, -2), complex(0.5, 3)}},
			dtypeCase{o.c + "c16", u64(o.o, f64(1e-3), f64(2), f64(-4), f64(8)), []complex128{complex(1e-3, 2), complex(-4, 8)}},
		)
	}
	cases = append(cases,
		dtypeCase{"|u1", []byte{0, 255}, []uint8{0, 255}},
		dtypeCase{"|i1", []byte{0x80, 127}, []int8{-128, 127}},
		dtypeCase{"|b1", []byte{1, 0}, []bool{true, false}},
		dtypeCase{"|S1", []byte("ab"), nil},
		dtypeCase{"<f2", []byte{0, 0x3c, 0, 0}, nil},
		dtypeCase{`[["f0", "<u2"], ["f1", "|u1"]]`, []byte{1, 0, 2, 3, 0, 4}, nil},
	)
	return cases
}

func TestSubscribeDecodesEveryDtype(t *testing.T) {
	cases := dtypeCases()
	var items []*pb.Item
	for i, c := range cases {
		items = append(items, &pb.Item{Id: uint64(0x1000 + i), Name: c.dtype, Dtype: c.dtype, Shape: []uint64{2}, Data: c.data})
	}
	client, _ := startFake(t, []*pb.Heap{{Stream: "s", Cnt: 5, Sequence: 1, Items: items}})
	heaps, err := receiveAll(t, client)
	if err != nil && !errors.Is(err, errEOF()) {
		t.Fatalf("Recv: %v", err)
	}
	if len(heaps) != 1 || heaps[0].Cnt != 5 || len(heaps[0].Items) != len(cases) {
		t.Fatalf("got %d heaps: %+v", len(heaps), heaps)
	}
	for _, c := range cases {
		it := heaps[0].Item(c.dtype)
		if it == nil {
			t.Fatalf("item %s missing", c.dtype)
		}
		if !reflect.DeepEqual(it.Value, c.want) {
			t.Errorf("dtype %s: value %#v, want %#v", c.dtype, it.Value, c.want)
		}
		if !reflect.DeepEqual(it.Data, c.data) || it.Dtype != c.dtype {
			t.Errorf("dtype %s: raw data or dtype changed", c.dtype)
		}
	}
}

func TestDecodeShapeMismatchIsProtocolError(t *testing.T) {
	bad := &pb.Item{Id: 1, Name: "x", Dtype: "<u4", Shape: []uint64{3}, Data: make([]byte, 8)}
	client, _ := startFake(t, []*pb.Heap{{Stream: "s", Sequence: 1, Items: []*pb.Item{bad}}})
	_, err := receiveAll(t, client)
	var perr *ProtocolError
	if !errors.As(err, &perr) {
		t.Fatalf("want ProtocolError, got %v", err)
	}
}

func TestEncodeValueRoundTrip(t *testing.T) {
	values := []any{
		[]bool{true, false}, []uint8{1, 2}, []int8{-1, 2}, []uint16{65535}, []int16{-2},
		[]uint32{1 << 31}, []int32{-5}, []uint64{1 << 60}, []int64{-(1 << 60)},
		[]float32{0.5}, []float64{-2.25}, []complex64{complex(1, 2)}, []complex128{complex(-3, 4)},
	}
	for _, v := range values {
		dtype, data, err := EncodeValue(v)
		if err != nil {
			t.Fatal(err)
		}
		n := uint64(reflect.ValueOf(v).Len())
		got, err := decodeValue(dtype, []uint64{n}, data)
		if err != nil || !reflect.DeepEqual(got, v) {
			t.Errorf("%T via %s: got %#v (%v)", v, dtype, got, err)
		}
	}
	item, err := NewItem(7, "scalar", uint16(9), nil)
	if err != nil || item.Dtype != "<u2" || len(item.Shape) != 0 || !reflect.DeepEqual(item.Data, []byte{9, 0}) {
		t.Fatalf("scalar item: %+v %v", item, err)
	}
}

func TestFragmentReassembly(t *testing.T) {
	big := make([]byte, 40)
	for i := range big {
		big[i] = byte(i * 3)
	}
	meta := func(off int, chunk []byte) *pb.Item {
		return &pb.Item{Id: 2, Name: "big", Dtype: "<u4", Shape: []uint64{10}, Offset: uint64(off), Size: 40, Data: chunk}
	}
	small := &pb.Item{Id: 1, Name: "small", Dtype: "|u1", Shape: []uint64{1}, Data: []byte{42}}
	msgs := []*pb.Heap{
		{Stream: "s", Cnt: 9, Sequence: 1, Fragment: 0, Fragments: 3, Items: []*pb.Item{small, meta(0, big[:16])}},
		{Stream: "s", Cnt: 9, Sequence: 1, Fragment: 1, Fragments: 3, Items: []*pb.Item{meta(16, big[16:32])}},
		{Stream: "s", Cnt: 9, Sequence: 1, Fragment: 2, Fragments: 3, Items: []*pb.Item{meta(32, big[32:])}},
		{Stream: "s", Cnt: 10, Sequence: 2, Items: []*pb.Item{small}},
	}
	client, _ := startFake(t, msgs)
	heaps, err := receiveAll(t, client)
	if err != nil && !errors.Is(err, errEOF()) {
		t.Fatal(err)
	}
	if len(heaps) != 2 || heaps[0].Fragments != 3 || heaps[0].Cnt != 9 || heaps[1].Cnt != 10 {
		t.Fatalf("heaps: %+v", heaps)
	}
	got := heaps[0].Item("big")
	want := make([]uint32, 10)
	for i := range want {
		want[i] = binary.LittleEndian.Uint32(big[4*i:])
	}
	if !reflect.DeepEqual(got.Data, big) || !reflect.DeepEqual(got.Value, want) {
		t.Fatalf("big item: %v / %v", got.Data, got.Value)
	}
	if v := heaps[0].Item("small").Value; !reflect.DeepEqual(v, []uint8{42}) {
		t.Fatalf("small item: %v", v)
	}
}

func TestFragmentOutOfOrderIsProtocolError(t *testing.T) {
	msgs := []*pb.Heap{
		{Stream: "s", Sequence: 1, Fragment: 0, Fragments: 3},
		{Stream: "s", Sequence: 1, Fragment: 2, Fragments: 3},
	}
	client, _ := startFake(t, msgs)
	_, err := receiveAll(t, client)
	var perr *ProtocolError
	if !errors.As(err, &perr) {
		t.Fatalf("want ProtocolError, got %v", err)
	}
}

func TestChunkOutsideItemIsProtocolError(t *testing.T) {
	msgs := []*pb.Heap{
		{Stream: "s", Sequence: 1, Fragment: 0, Fragments: 2, Items: []*pb.Item{{Id: 1, Name: "x", Dtype: "|u1", Shape: []uint64{4}, Size: 4, Offset: 3, Data: []byte{1, 2}}}},
		{Stream: "s", Sequence: 1, Fragment: 1, Fragments: 2},
	}
	client, _ := startFake(t, msgs)
	_, err := receiveAll(t, client)
	var perr *ProtocolError
	if !errors.As(err, &perr) {
		t.Fatalf("want ProtocolError, got %v", err)
	}
}

func TestGapDetection(t *testing.T) {
	msgs := []*pb.Heap{
		{Stream: "s", Sequence: 1},
		{Stream: "s", Sequence: 2},
		{Stream: "s", Sequence: 5, Dropped: 2},
		{Stream: "s", Sequence: 6, Dropped: 2},
		{Stream: "s", Sequence: 9, Dropped: 4},
	}
	client, _ := startFake(t, msgs)
	sub, err := client.Subscribe(context.Background(), "s")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if sub.QueueDepth() != 7 || sub.SubscriberID() != 3 {
		t.Fatalf("metadata: depth %d id %d", sub.QueueDepth(), sub.SubscriberID())
	}
	var lost []uint64
	for {
		h, err := sub.Recv()
		if err != nil {
			if !errors.Is(err, errEOF()) {
				t.Fatal(err)
			}
			break
		}
		lost = append(lost, h.Lost)
	}
	if !reflect.DeepEqual(lost, []uint64{0, 0, 2, 0, 2}) || sub.Lost() != 4 {
		t.Fatalf("lost %v total %d", lost, sub.Lost())
	}
}

func TestSequenceGoingBackIsProtocolError(t *testing.T) {
	client, _ := startFake(t, []*pb.Heap{{Stream: "s", Sequence: 2}, {Stream: "s", Sequence: 2}})
	_, err := receiveAll(t, client)
	var perr *ProtocolError
	if !errors.As(err, &perr) {
		t.Fatalf("want ProtocolError, got %v", err)
	}
}

func TestTokenMetadata(t *testing.T) {
	client, fake := startFake(t, nil, WithToken("s3cret"))
	if _, err := receiveAll(t, client); !errors.Is(err, errEOF()) {
		t.Fatal(err)
	}
	if got := <-fake.token; got != "Bearer s3cret" {
		t.Fatalf("authorization %q", got)
	}
	plain, fake2 := startFake(t, nil)
	if _, err := receiveAll(t, plain); !errors.Is(err, errEOF()) {
		t.Fatal(err)
	}
	if got := <-fake2.token; got != "" {
		t.Fatalf("authorization without token: %q", got)
	}
}

func TestSubscribeUnknownStream(t *testing.T) {
	client, _ := startFake(t, nil)
	_, err := client.Subscribe(context.Background(), "nope")
	if err == nil {
		// The status may only surface on the first Recv when the server ends the call at once.
		t.Fatal("want NOT_FOUND from Subscribe")
	}
	if status.Code(err) != codes.NotFound {
		t.Fatalf("want NOT_FOUND, got %v", err)
	}
}

func TestSubscribeHonoursCancellation(t *testing.T) {
	client, _ := startFake(t, []*pb.Heap{{Stream: "s", Sequence: 1}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := client.Subscribe(ctx, "s")
	if status.Code(err) != codes.Canceled {
		t.Fatalf("want CANCELLED, got %v", err)
	}
}
