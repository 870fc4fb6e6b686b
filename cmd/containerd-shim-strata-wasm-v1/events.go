package main

import (
	"context"
	"net"
	"strings"
	"time"

	eventsapi "github.com/containerd/containerd/api/services/ttrpc/events/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"k8s.io/klog/v2"
)

// publisher forwards task events to containerd over its ttrpc socket, in
// order, retrying briefly: CRI learns that a container exited (and that it
// was OOM-killed) only from these events.
type publisher struct {
	namespace, address string
	ch                 chan *types.Envelope
	done               chan struct{}
}

func newPublisher(namespace, address string) *publisher {
	p := &publisher{namespace: namespace, address: strings.TrimPrefix(address, "unix://"),
		ch: make(chan *types.Envelope, 256), done: make(chan struct{})}
	go p.loop()
	return p
}

func (p *publisher) publish(topic string, ev proto.Message) {
	b, err := proto.Marshal(ev)
	if err != nil {
		klog.ErrorS(err, "Marshal event", "topic", topic)
		return
	}
	// containerd resolves the type by its bare proto name (no
	// type.googleapis.com/ prefix), as typeurl registers it.
	p.ch <- &types.Envelope{
		Timestamp: timestamppb.Now(),
		Namespace: p.namespace,
		Topic:     topic,
		Event:     &anypb.Any{TypeUrl: string(proto.MessageName(ev)), Value: b},
	}
}

// close sends what is queued (bounded) and stops.
func (p *publisher) close() {
	close(p.ch)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
}

func (p *publisher) loop() {
	defer close(p.done)
	var client *ttrpc.Client
	defer func() {
		if client != nil {
			client.Close()
		}
	}()
	for env := range p.ch {
		for attempt := 0; attempt < 5; attempt++ {
			if client == nil {
				conn, err := net.DialTimeout("unix", p.address, 5*time.Second)
				if err != nil {
					klog.ErrorS(err, "Connect to containerd for events", "address", p.address)
					time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
					continue
				}
				client = ttrpc.NewClient(conn)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			ctx = ttrpc.WithMetadata(ctx, ttrpc.MD{"containerd-namespace-ttrpc": []string{p.namespace}})
			_, err := eventsapi.NewTTRPCEventsClient(client).Forward(ctx, &eventsapi.ForwardRequest{Envelope: env})
			cancel()
			if err == nil {
				klog.V(4).InfoS("Published event", "topic", env.Topic)
				break
			}
			klog.ErrorS(err, "Publish event", "topic", env.Topic, "attempt", attempt)
			client.Close()
			client = nil
			time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
		}
	}
}
