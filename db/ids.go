package db

import (
	"strings"

	"github.com/oklog/ulid/v2"
)

// ID prefixes say what an id names, so a key pasted in the wrong place is obvious.
const (
	PrefixWorkspace  = "ws"
	PrefixUser       = "usr"
	PrefixAPIKey     = "key"
	PrefixConnection = "con"
	PrefixRule       = "rul"
	PrefixRuleAction = "act"
	PrefixEvent      = "evt"
	PrefixDelivery   = "dlv"
	PrefixAttempt    = "att"
	PrefixInvite     = "inv"
)

// NewID returns a sortable, prefixed id such as "evt_01JD…": a ULID, so ids created
// later sort later and cursor paging can use the primary key.
func NewID(prefix string) string {
	return prefix + "_" + strings.ToLower(ulid.Make().String())
}
