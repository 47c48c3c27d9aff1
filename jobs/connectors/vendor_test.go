package connectors_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/fanout-dev/fanout/jobs/connectors"
)

// Helpers shared by the vendor connector tests, which call Send against the fakes.

// loopback is the policy of these tests: the fakes listen on 127.0.0.1.
var loopback = connectors.ClientOptions{AllowPrivate: true}

var loopbackClient = connectors.NewHTTPClient(loopback)

var testEvent = connectors.Event{
	ID: "evt_test", Type: "lead.created", OccurredAt: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC),
	Data: json.RawMessage(`{"email":"Ada@Example.com"}`),
}

func raw(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// send makes one attempt with a 5-second deadline.
func send(t *testing.T, c connectors.Connector, req *connectors.Request) connectors.Result {
	t.Helper()
	if req.HTTP == nil {
		req.HTTP = loopbackClient
	}
	if req.DeliveryID == "" {
		req.DeliveryID = "dlv_test"
	}
	if req.Event.ID == "" {
		req.Event = testEvent
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.Send(ctx, req)
}

func expectOutcome(t *testing.T, r connectors.Result, outcome connectors.Outcome, class string) {
	t.Helper()
	if r.Outcome != outcome || (class != "" && r.ErrorClass != class) {
		t.Fatalf("got %s/%s (%d: %s), want %s/%s", r.Outcome, r.ErrorClass, r.StatusCode, r.Message, outcome, class)
	}
}

// noSecrets fails when a secret shows in what an attempt records.
func noSecrets(t *testing.T, r connectors.Result, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		for field, v := range map[string]string{"Request": r.Request, "Response": r.Response, "Message": r.Message} {
			if s != "" && strings.Contains(v, s) {
				t.Errorf("Result.%s contains a secret: %q", field, v)
			}
		}
	}
}

// jsonEqual compares a JSON body with the expected document, ignoring key order.
func jsonEqual(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("body %s is not JSON: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad expectation %s: %v", want, err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if string(gb) != string(wb) {
		t.Errorf("body\n got %s\nwant %s", gb, wb)
	}
}

func fieldErr(t *testing.T, err error, field string) {
	t.Helper()
	fe, ok := err.(*connectors.FieldError)
	if !ok || fe.Field != field {
		t.Errorf("error = %v, want a FieldError on %s", err, field)
	}
}
