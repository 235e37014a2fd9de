// Command mcp-client subscribes to Istio ServiceEntries over MCP-over-xDS the way istiod does
// when its mesh config names an `xds://` config source: one state-of-the-world ADS stream, a
// DiscoveryRequest per Istio config type (empty resource names), and an ACK for every response.
//
// Every resource is decoded with Istio's own generated types (istio.io/api): the Any must hold an
// istio.mcp.v1alpha1.Resource whose body is an istio.networking.v1alpha3.ServiceEntry. Each
// response is printed as one JSON line on stdout; any decoding failure is NACKed, reported on
// stderr, and ends the program with status 1, so a test cannot miss it.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	mcp "istio.io/api/mcp/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"
)

const (
	serviceEntryType = "networking.istio.io/v1alpha3/ServiceEntry"
	// istiod asks for every config type it knows; one more is enough to check that the server
	// answers a type it has nothing for (istiod waits for an answer on each before it is ready).
	virtualServiceType = "networking.istio.io/v1alpha3/VirtualService"
)

type decodedResource struct {
	Name        string            `json:"name"`
	Version     string            `json:"version"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	CreateTime  string            `json:"create_time,omitempty"`
	Spec        json.RawMessage   `json:"spec"`
}

type decodedResponse struct {
	TypeURL     string            `json:"type_url"`
	VersionInfo string            `json:"version_info"`
	Resources   []decodedResource `json:"resources"`
}

func decode(response *discovery.DiscoveryResponse) (*decodedResponse, error) {
	out := &decodedResponse{
		TypeURL:     response.TypeUrl,
		VersionInfo: response.VersionInfo,
		Resources:   []decodedResource{},
	}
	for _, packed := range response.Resources {
		message, err := packed.UnmarshalNew()
		if err != nil {
			return nil, fmt.Errorf("resource type %q: %w", packed.TypeUrl, err)
		}
		resource, ok := message.(*mcp.Resource)
		if !ok {
			return nil, fmt.Errorf("resource is a %T, not an istio.mcp.v1alpha1.Resource", message)
		}
		if resource.Metadata == nil || resource.Body == nil {
			return nil, fmt.Errorf("resource without metadata or body: %v", resource)
		}
		// istiod splits the name into namespace and name and rejects anything else.
		if parts := strings.Split(resource.Metadata.Name, "/"); len(parts) != 2 {
			return nil, fmt.Errorf("name %q is not <namespace>/<name>", resource.Metadata.Name)
		}
		body, err := resource.Body.UnmarshalNew()
		if err != nil {
			return nil, fmt.Errorf("%s: body type %q: %w", resource.Metadata.Name, resource.Body.TypeUrl, err)
		}
		entry, ok := body.(*networking.ServiceEntry)
		if !ok {
			return nil, fmt.Errorf("%s: body is a %T, not a ServiceEntry", resource.Metadata.Name, body)
		}
		spec, err := protojson.Marshal(entry)
		if err != nil {
			return nil, err
		}
		decoded := decodedResource{
			Name:        resource.Metadata.Name,
			Version:     resource.Metadata.Version,
			Labels:      resource.Metadata.Labels,
			Annotations: resource.Metadata.Annotations,
			Spec:        spec,
		}
		if resource.Metadata.CreateTime != nil {
			decoded.CreateTime = resource.Metadata.CreateTime.AsTime().UTC().Format("2006-01-02T15:04:05Z")
		}
		out.Resources = append(out.Resources, decoded)
	}
	return out, nil
}

func run(address string) error {
	conn, err := grpc.NewClient(address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).
		StreamAggregatedResources(context.Background())
	if err != nil {
		return err
	}
	// The node istiod sends: the "api" generator asks an Istio server for config, not Envoy types.
	node := &core.Node{
		Id: "sidecar~127.0.0.1~istiod-mcp-test.istio-system~istio-system.svc.cluster.local",
		Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{
			"GENERATOR": structpb.NewStringValue("api"),
		}},
	}
	for i, typeURL := range []string{serviceEntryType, virtualServiceType} {
		request := &discovery.DiscoveryRequest{TypeUrl: typeURL}
		if i == 0 {
			request.Node = node
		}
		if err := stream.Send(request); err != nil {
			return err
		}
	}
	for {
		response, err := stream.Recv()
		if err != nil {
			return err
		}
		ack := &discovery.DiscoveryRequest{
			TypeUrl:       response.TypeUrl,
			VersionInfo:   response.VersionInfo,
			ResponseNonce: response.Nonce,
		}
		var decoded *decodedResponse
		var decodeErr error
		switch response.TypeUrl {
		case serviceEntryType:
			decoded, decodeErr = decode(response)
		case virtualServiceType:
			decoded = &decodedResponse{TypeURL: response.TypeUrl, VersionInfo: response.VersionInfo,
				Resources: []decodedResource{}}
			if len(response.Resources) != 0 {
				decodeErr = fmt.Errorf("unexpected VirtualServices: %d", len(response.Resources))
			}
		default:
			decodeErr = fmt.Errorf("response for a type never asked for: %q", response.TypeUrl)
		}
		if decodeErr != nil {
			ack.VersionInfo = ""
			ack.ErrorDetail = &status.Status{Code: 3, Message: decodeErr.Error()}
			_ = stream.Send(ack)
			return decodeErr
		}
		line, err := json.Marshal(decoded)
		if err != nil {
			return err
		}
		fmt.Println(string(line))
		if err := stream.Send(ack); err != nil {
			return err
		}
	}
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: mcp-client <bridge xds host:port>")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "mcp-client:", err)
		os.Exit(1)
	}
}
