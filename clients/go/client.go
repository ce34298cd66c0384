// Package gateway is a Go client of the spead2 gateway daemon (service
// spead2.gateway.v1.Gateway): list streams, subscribe to heaps with items decoded into Go
// slices, watch statistics and send heaps. Every call takes a context; cancelling it or
// passing its deadline ends the call. SubscribeReconnecting and WatchStatsReconnecting
// survive the daemon restarting, with backoff, and report each gap (see ReconnectPolicy).
package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/spead2-rs/spead2-gateway-go/gen/gatewayv1"
)

// DefaultMaxMessageBytes is the default limit on message size, matching the Python client:
// larger than the gateway's fragment size, so split heaps always fit.
const DefaultMaxMessageBytes = 64 << 20

// DefaultKeepalive is the default ping interval on idle connections. The gateway accepts
// client pings down to its min_ping_interval (at most 10 s).
const DefaultKeepalive = 20 * time.Second

// DefaultWindowBytes is the default HTTP/2 flow-control window of each stream and of the
// connection. gRPC's default starts at 64 KiB and grows by probing the bandwidth-delay
// product, which stays small on a fast local link, so the server stalls every few frames for
// a window update; a fixed window of 16 one-MiB heaps lets it stream. It is also the most a
// subscription holds in transit, unread, before the gateway's queue for it fills.
const DefaultWindowBytes = 16 << 20

// DefaultReadBufferBytes is the default size of the connection's read buffer: gRPC's 32 KiB
// default takes 32 reads per MiB received.
const DefaultReadBufferBytes = 256 << 10

type options struct {
	tlsConfig  *tls.Config
	token      string
	keepalive  time.Duration
	maxMessage int
	window     int32
	readBuffer int
	extra      []grpc.DialOption
}

// Option configures Dial.
type Option func(*options)

// WithTLS connects over TLS with this configuration (set RootCAs for a private CA and
// Certificates for mutual TLS). Without it the connection is plaintext.
func WithTLS(config *tls.Config) Option { return func(o *options) { o.tlsConfig = config } }

// WithToken sends "authorization: Bearer <token>" with every call.
func WithToken(token string) Option { return func(o *options) { o.token = token } }

// WithKeepalive sets the interval of keepalive pings (0 disables them; gRPC raises values
// under 10 s to 10 s).
func WithKeepalive(interval time.Duration) Option { return func(o *options) { o.keepalive = interval } }

// WithMaxMessageBytes sets the largest message sent or received.
func WithMaxMessageBytes(n int) Option { return func(o *options) { o.maxMessage = n } }

// WithWindowBytes sets the HTTP/2 flow-control window of each stream and of the connection:
// 0 keeps gRPC's own, which probes the bandwidth-delay product; otherwise at least
// MinWindowBytes (Dial refuses less, which gRPC would silently turn into a fixed 64 KiB).
func WithWindowBytes(n int32) Option { return func(o *options) { o.window = n } }

// MinWindowBytes is the least window WithWindowBytes takes: HTTP/2's initial window.
const MinWindowBytes = 65535

// WithReadBufferBytes sets the size of the connection's read buffer (0 keeps gRPC's default;
// Dial refuses a negative size).
func WithReadBufferBytes(n int) Option { return func(o *options) { o.readBuffer = n } }

// WithDialOptions adds raw gRPC dial options (applied last).
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *options) { o.extra = append(o.extra, opts...) }
}

// Client is a connection to a gateway. It is safe for concurrent use.
type Client struct {
	conn *grpc.ClientConn
	api  pb.GatewayClient
}

// bearer implements credentials.PerRPCCredentials. It is allowed on plaintext connections
// because the gateway is commonly used over loopback without TLS.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }

// Dial creates a client of the gateway at target ("host:port", or any gRPC target). The
// connection is made lazily, on the first call.
func Dial(target string, opts ...Option) (*Client, error) {
	o := options{
		keepalive:  DefaultKeepalive,
		maxMessage: DefaultMaxMessageBytes,
		window:     DefaultWindowBytes,
		readBuffer: DefaultReadBufferBytes,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.window != 0 && o.window < MinWindowBytes {
		return nil, fmt.Errorf("gateway: window of %d bytes: want 0 (gRPC's own) or at least %d", o.window, MinWindowBytes)
	}
	if o.readBuffer < 0 {
		return nil, fmt.Errorf("gateway: read buffer of %d bytes: want 0 (gRPC's own) or more", o.readBuffer)
	}
	dial := []grpc.DialOption{
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(o.maxMessage), grpc.MaxCallSendMsgSize(o.maxMessage)),
	}
	if o.tlsConfig != nil {
		dial = append(dial, grpc.WithTransportCredentials(credentials.NewTLS(o.tlsConfig)))
	} else {
		dial = append(dial, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	if o.token != "" {
		dial = append(dial, grpc.WithPerRPCCredentials(bearer(o.token)))
	}
	if o.keepalive > 0 {
		dial = append(dial, grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time: o.keepalive, Timeout: 20 * time.Second, PermitWithoutStream: true,
		}))
	}
	if o.window > 0 {
		dial = append(dial, grpc.WithInitialWindowSize(o.window), grpc.WithInitialConnWindowSize(o.window))
	}
	if o.readBuffer > 0 {
		dial = append(dial, grpc.WithReadBufferSize(o.readBuffer))
	}
	dial = append(dial, o.extra...)
	conn, err := grpc.NewClient(target, dial...)
	if err != nil {
		return nil, err
	}
	return &Client{conn: conn, api: pb.NewGatewayClient(conn)}, nil
}

// Close closes the connection; calls in progress fail.
func (c *Client) Close() error { return c.conn.Close() }

// API is the generated client, for anything this package does not wrap.
func (c *Client) API() pb.GatewayClient { return c.api }

// ListStreams returns every receive and send stream of the daemon.
func (c *Client) ListStreams(ctx context.Context) ([]*pb.StreamInfo, error) {
	resp, err := c.api.ListStreams(ctx, &pb.ListStreamsRequest{})
	if err != nil {
		return nil, err
	}
	return resp.GetStreams(), nil
}

// GetStream returns a stream's configuration, item descriptors and statistics.
func (c *Client) GetStream(ctx context.Context, name string) (*pb.StreamDetail, error) {
	return c.api.GetStream(ctx, &pb.GetStreamRequest{Name: name})
}

// SubscribeOption configures Subscribe.
type SubscribeOption func(*pb.SubscribeRequest)

// ItemNames keeps only the items with these names (together with ItemIDs: either matches).
func ItemNames(names ...string) SubscribeOption {
	return func(r *pb.SubscribeRequest) { r.ItemNames = append(r.ItemNames, names...) }
}

// ItemIDs keeps only the items with these ids (together with ItemNames: either matches).
func ItemIDs(ids ...uint64) SubscribeOption {
	return func(r *pb.SubscribeRequest) { r.ItemIds = append(r.ItemIds, ids...) }
}

// EveryNth delivers every nth heap.
func EveryNth(n uint32) SubscribeOption { return func(r *pb.SubscribeRequest) { r.EveryNth = n } }

// IncludeIncomplete also delivers heaps that were not completely received.
func IncludeIncomplete() SubscribeOption {
	return func(r *pb.SubscribeRequest) { r.IncludeIncomplete = true }
}

// QueueDepth asks for a queue of n heaps (capped by the server).
func QueueDepth(n uint32) SubscribeOption { return func(r *pb.SubscribeRequest) { r.QueueDepth = n } }

// Subscription is a stream of heaps. Recv is not safe for concurrent use.
type Subscription struct {
	ctx    context.Context
	cancel context.CancelFunc // ends the subscription and every call it makes
	client *Client
	req    *pb.SubscribeRequest
	call   *subscribeCall
	reasm  reassembler
	lost   uint64
	retry  *retrier // nil: no reconnection
}

// subscribeCall is one Subscribe call.
type subscribeCall struct {
	stream grpc.ServerStreamingClient[pb.Heap]
	cancel context.CancelFunc
	header metadata.MD
	// A message or error read while waiting for the initial metadata.
	pending    *pb.Heap
	pendingErr error
}

// openSubscribe starts a Subscribe call and waits for the gateway to accept or refuse it.
func (c *Client) openSubscribe(ctx context.Context, req *pb.SubscribeRequest) (*subscribeCall, error) {
	ctx, cancel := context.WithCancel(ctx)
	stream, err := c.api.Subscribe(ctx, req, grpc.ForceCodecV2(heapCodec{}))
	if err != nil {
		cancel()
		return nil, err
	}
	// The initial metadata arrives with the first response or an early error; waiting
	// for it surfaces NOT_FOUND and friends here rather than on the first Recv.
	header, err := stream.Header()
	if err != nil {
		cancel()
		return nil, err
	}
	call := &subscribeCall{stream: stream, cancel: cancel, header: header}
	if len(header) == 0 {
		// No initial metadata: the server answered trailers-only, i.e. the call already
		// ended. Reading once gives its status (NOT_FOUND, UNAUTHENTICATED, ...).
		msg, err := stream.Recv()
		if err != nil && !errors.Is(err, io.EOF) {
			cancel()
			return nil, err
		}
		call.pending, call.pendingErr = msg, err
	}
	return call, nil
}

func (call *subscribeCall) next() (*pb.Heap, error) {
	if call.pending != nil || call.pendingErr != nil {
		msg, err := call.pending, call.pendingErr
		call.pending, call.pendingErr = nil, nil
		return msg, err
	}
	return call.stream.Recv()
}

func subscribeRequest(stream string, opts []SubscribeOption) *pb.SubscribeRequest {
	req := &pb.SubscribeRequest{Stream: stream}
	for _, opt := range opts {
		opt(req)
	}
	return req
}

// Subscribe starts receiving the heaps of a receive stream. The subscription lasts until ctx
// ends, Close is called, or the server ends it (Recv then returns io.EOF or the status).
func (c *Client) Subscribe(ctx context.Context, stream string, opts ...SubscribeOption) (*Subscription, error) {
	ctx, cancel := context.WithCancel(ctx)
	req := subscribeRequest(stream, opts)
	call, err := c.openSubscribe(ctx, req)
	if err != nil {
		cancel()
		return nil, err
	}
	return &Subscription{ctx: ctx, cancel: cancel, client: c, req: req, call: call}, nil
}

// SubscribeReconnecting is Subscribe, but the subscription survives its call breaking with a
// code in policy.RetryCodes (the daemon went away, was restarted, the connection was
// reset): it calls Subscribe again after a backoff, and the first heap of the new call
// carries a Reconnect report in Heap.Reconnect. It also waits, the same way, for a gateway
// that is not reachable yet. Other errors, an exhausted policy, ctx ending or Close end it
// as for Subscribe: Recv returns the last error.
func (c *Client) SubscribeReconnecting(ctx context.Context, stream string, policy ReconnectPolicy, opts ...SubscribeOption) (*Subscription, error) {
	if err := policy.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &Subscription{ctx: ctx, cancel: cancel, client: c, req: subscribeRequest(stream, opts), retry: newRetrier(policy)}
	if err := s.reconnect(nil); err != nil {
		cancel()
		return nil, err
	}
	return s, nil
}

// Recv returns the next heap (reassembled from its fragments if it was split), io.EOF when
// the server ended the subscription normally, or the call's error.
func (s *Subscription) Recv() (*Heap, error) {
	for {
		heap, err := s.recvCall()
		if err == nil {
			if s.retry != nil {
				s.retry.delivered(heap)
			}
			return heap, nil
		}
		if s.retry == nil || errors.Is(err, io.EOF) || s.ctx.Err() != nil {
			return nil, err
		}
		var perr *ProtocolError
		if errors.As(err, &perr) {
			return nil, err
		}
		s.call.cancel()
		if err := s.reconnect(err); err != nil {
			return nil, err
		}
	}
}

// recvCall returns the next heap of the current call.
func (s *Subscription) recvCall() (*Heap, error) {
	for {
		msg, err := s.call.next()
		if err != nil {
			return nil, err
		}
		heap, err := s.reasm.feed(msg)
		if err != nil {
			s.cancel()
			return nil, err
		}
		if heap != nil {
			s.lost += heap.Lost
			return heap, nil
		}
	}
}

// reconnect makes Subscribe calls until the gateway accepts one, following the policy; cause
// is the error that ended the previous call (nil for the first call). It returns the error
// that ends the subscription instead.
func (s *Subscription) reconnect(cause error) error {
	err := cause
	for {
		if err != nil {
			delay, ok := s.retry.failed(err)
			if !ok {
				return err
			}
			if werr := sleepCtx(s.ctx, delay); werr != nil {
				return werr
			}
			// The connection's own backoff (up to 2 min) would otherwise fail our calls at
			// once long after the gateway is back: the policy sets the pace.
			s.client.conn.ResetConnectBackoff()
		}
		call, cerr := s.client.openSubscribe(s.ctx, s.req)
		if cerr == nil {
			s.call, s.reasm = call, reassembler{}
			s.retry.accepted(s.SubscriberID(), s.instance())
			return nil
		}
		if s.ctx.Err() != nil {
			return cerr
		}
		err = cerr
	}
}

// sleepCtx waits d, or returns the status error of ctx ending first.
func sleepCtx(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	case <-timer.C:
		return nil
	}
}

// Lost is the number of heaps lost so far, from gaps in the sequence numbers (heaps lost
// while a reconnecting subscription was disconnected are not counted: see Reconnect).
func (s *Subscription) Lost() uint64 { return s.lost }

// Reconnects is how many times a reconnecting subscription got back after its call broke.
func (s *Subscription) Reconnects() int {
	if s.retry == nil {
		return 0
	}
	return s.retry.reconnects
}

// QueueDepth is the queue depth in force for this subscription (0 if the server did not say).
func (s *Subscription) QueueDepth() int { return headerInt(s.call.header, "x-queue-depth") }

// SubscriberID is the server's id of this subscription (0 if the server did not say). It
// changes when a reconnecting subscription reconnects.
func (s *Subscription) SubscriberID() int { return headerInt(s.call.header, "x-subscriber-id") }

// Close ends the subscription.
func (s *Subscription) Close() { s.cancel() }

// instance is the daemon process's id from the call's header ("" if it sent none).
func (s *Subscription) instance() string {
	if values := s.call.header.Get("x-gateway-instance"); len(values) > 0 {
		return values[0]
	}
	return ""
}

func headerInt(md metadata.MD, key string) int {
	values := md.Get(key)
	if len(values) == 0 {
		return 0
	}
	n, err := strconv.Atoi(values[0])
	if err != nil {
		return 0
	}
	return n
}

// StatsWatch is a stream of statistics updates.
type StatsWatch struct {
	ctx    context.Context
	cancel context.CancelFunc
	client *Client
	req    *pb.WatchStatsRequest
	stream grpc.ServerStreamingClient[pb.StatsUpdate]
	retry  *retrier // nil: no reconnection
	last   *Reconnect
}

// WatchStats receives the statistics of the named streams (none: all) every interval (0:
// the server's default of one second; the server enforces a minimum).
func (c *Client) WatchStats(ctx context.Context, interval time.Duration, streams ...string) (*StatsWatch, error) {
	ctx, cancel := context.WithCancel(ctx)
	w := &StatsWatch{ctx: ctx, cancel: cancel, client: c,
		req: &pb.WatchStatsRequest{Streams: streams, IntervalSeconds: interval.Seconds()}}
	stream, err := c.api.WatchStats(ctx, w.req)
	if err != nil {
		cancel()
		return nil, err
	}
	w.stream = stream
	return w, nil
}

// WatchStatsReconnecting is WatchStats, but the watch calls again after its call broke, as
// SubscribeReconnecting does (the policy's OnReconnect and LastReconnect report it; counters
// start again from 0 when the daemon was restarted). Errors show on Recv.
func (c *Client) WatchStatsReconnecting(ctx context.Context, interval time.Duration, policy ReconnectPolicy, streams ...string) (*StatsWatch, error) {
	if err := policy.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	return &StatsWatch{ctx: ctx, cancel: cancel, client: c, retry: newRetrier(policy),
		req: &pb.WatchStatsRequest{Streams: streams, IntervalSeconds: interval.Seconds()}}, nil
}

// Recv returns the next update, io.EOF when the server ended the watch, or the error.
func (w *StatsWatch) Recv() (*pb.StatsUpdate, error) {
	if w.retry == nil {
		return w.stream.Recv()
	}
	for {
		var err error
		if w.stream == nil {
			w.stream, err = w.client.api.WatchStats(w.ctx, w.req)
		}
		if err == nil {
			var update *pb.StatsUpdate
			if update, err = w.stream.Recv(); err == nil {
				if !w.retry.connected {
					w.retry.accepted(0, "")
				}
				w.last = w.retry.take()
				return update, nil
			}
			w.stream = nil
		}
		if errors.Is(err, io.EOF) || w.ctx.Err() != nil {
			return nil, err
		}
		delay, ok := w.retry.failed(err)
		if !ok {
			return nil, err
		}
		if err := sleepCtx(w.ctx, delay); err != nil {
			return nil, err
		}
		w.client.conn.ResetConnectBackoff()
	}
}

// LastReconnect is the report of a reconnecting watch when the update Recv just returned is
// the first after a reconnection, and nil otherwise.
func (w *StatsWatch) LastReconnect() *Reconnect { return w.last }

// Close ends the watch.
func (w *StatsWatch) Close() { w.cancel() }

// SendHeap is one heap to transmit.
type SendHeap struct {
	StartOfStream bool
	EndOfStream   bool
	// Descriptors: new or changed item descriptions, sent with this heap.
	Descriptors []*pb.Descriptor
	// Cnt is the heap counter (0: the stream allocates the next one).
	Cnt   uint64
	Items []*pb.Item
}

// NewItem builds an item value from a Go slice or scalar of a common type (see
// EncodeValue). shape nil means a 1-D array of the slice's length for a slice, and a 0-d
// value for a scalar.
func NewItem(id uint64, name string, value any, shape []uint64) (*pb.Item, error) {
	dtype, data, err := EncodeValue(value)
	if err != nil {
		return nil, err
	}
	if shape == nil {
		if _, scalar := scalarKind(value); !scalar {
			et := parseDtype(dtype)
			shape = []uint64{uint64(len(data) / et.size)}
		}
	}
	return &pb.Item{Id: id, Name: name, Dtype: dtype, Shape: shape, Data: data}, nil
}

func scalarKind(value any) (string, bool) {
	switch value.(type) {
	case bool, uint8, int8, uint16, int16, uint32, int32, uint64, int64, float32, float64, complex64, complex128:
		return "", true
	}
	return "", false
}

// SendResult counts what a Send call transmitted.
type SendResult struct {
	Heaps uint64
	Bytes uint64
}

// Sender streams heaps into a send stream. Not safe for concurrent use.
type Sender struct {
	stream  grpc.ClientStreamingClient[pb.SendRequest, pb.SendResponse]
	name    string
	started bool
}

// Send opens a call that transmits heaps into the send stream name.
func (c *Client) Send(ctx context.Context, name string) (*Sender, error) {
	call, err := c.api.Send(ctx)
	if err != nil {
		return nil, err
	}
	return &Sender{stream: call, name: name}, nil
}

// Send queues one heap. An error other than io.EOF is final; io.EOF means the server ended
// the call, and Close returns its status.
func (s *Sender) Send(h *SendHeap) error {
	req := &pb.SendRequest{
		StartOfStream: h.StartOfStream, EndOfStream: h.EndOfStream,
		Descriptors: h.Descriptors, Cnt: h.Cnt, Items: h.Items,
	}
	if !s.started {
		req.Stream = s.name
		s.started = true
	}
	return s.stream.Send(req)
}

// Close ends the call and waits until every heap is on the wire.
func (s *Sender) Close() (SendResult, error) {
	resp, err := s.stream.CloseAndRecv()
	if err != nil {
		return SendResult{}, err
	}
	return SendResult{Heaps: resp.GetHeaps(), Bytes: resp.GetBytes()}, nil
}
