package gateway

import (
	"io"

	pb "github.com/spead2-rs/spead2-gateway-go/gen/gatewayv1"
)

func errEOF() error { return io.EOF }

type (
	pbDescriptor = pb.Descriptor
	pbItem       = pb.Item
)
