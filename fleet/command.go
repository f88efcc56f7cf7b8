package fleet

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// ErrNotAvailable is what a Controller returns, wrapped, for a command this
// firmware cannot carry out yet (comment_remove before comments exist, a
// private broadcast before invites exist). The reply then says so.
var ErrNotAvailable = errors.New("not available in this firmware")

// Controller carries out commands. The daemon implements it on top of the
// same state-machine entry points the button and the HTTP API use, so a
// command from MQTT behaves exactly like one from anywhere else. Every method
// returns the reason it could not do what was asked; that error goes to the
// operator verbatim as the reply's "error". Methods run one at a time, never
// on the MQTT network goroutine.
type Controller interface {
	// Live goes live (live while live is fine).
	Live(ctx context.Context, args LiveArgs) error
	// Stop ends the broadcast (stop while idle is fine).
	Stop(ctx context.Context) error
	// Set changes settings; only the fields that are non-nil.
	Set(ctx context.Context, args SetArgs) error
	// Reboot must return before the box goes down (schedule the reboot a
	// moment later) so that the reply can get out.
	Reboot(ctx context.Context) error
	// OTA starts an update and returns once it is under way or refused; its
	// progress arrives as ota_progress events.
	OTA(ctx context.Context, args OTAArgs) error
	// CommentRemove removes a comment for everyone.
	CommentRemove(ctx context.Context, commentID string) error
	// ViewerBlock blocks a viewer for the rest of the broadcast.
	ViewerBlock(ctx context.Context, viewerID string) error
	// ReplayDelete deletes a replay kept on the box.
	ReplayDelete(ctx context.Context, replayID string) error
}

// LiveArgs are the arguments of the live command. A nil field was not given:
// the title then stays what it is (as with POST /api/live).
type LiveArgs struct {
	Title   *string
	Private *bool
}

// SetArgs are the arguments of the set command; nil fields were not given.
// At least one is non-nil.
type SetArgs struct {
	Title           *string
	Private         *bool
	CommentsEnabled *bool
	BitrateKbps     *int
	UplinkURL       *string
	UplinkToken     *string
	UplinkEnabled   *bool
}

// OTAArgs are the arguments of the ota command.
type OTAArgs struct {
	URL string
	// Version is what the operator expects the bundle to contain; empty: any.
	Version string
	// SHA256 is the expected bundle hash in hex; empty: not checked here.
	SHA256    string
	Downgrade bool
}

// Command names, as they appear last in the command topics.
const (
	CmdLive          = "live"
	CmdStop          = "stop"
	CmdSet           = "set"
	CmdReboot        = "reboot"
	CmdOTA           = "ota"
	CmdCommentRemove = "comment_remove"
	CmdViewerBlock   = "viewer_block"
	CmdReplayDelete  = "replay_delete"
)

// maxCommandBytes bounds a command payload; real ones are a few hundred bytes.
const maxCommandBytes = 16 << 10

// maxTitleRunes matches the HTTP API's limit.
const maxTitleRunes = 120

// command is one decoded command, ready to run.
type command struct {
	ID     string
	Name   string
	Live   LiveArgs
	Set    SetArgs
	OTA    OTAArgs
	Target string // comment, viewer or replay id
}

// field decodes one argument into the command.
type field func(c *command, raw json.RawMessage) error

// commandFields lists, per command, the arguments it takes.
var commandFields = map[string]map[string]field{
	CmdLive: {
		"title":   func(c *command, r json.RawMessage) error { return decodeTitle(r, &c.Live.Title) },
		"private": func(c *command, r json.RawMessage) error { return decodeBool(r, &c.Live.Private) },
	},
	CmdStop:   {},
	CmdReboot: {},
	CmdSet: {
		"title":            func(c *command, r json.RawMessage) error { return decodeTitle(r, &c.Set.Title) },
		"private":          func(c *command, r json.RawMessage) error { return decodeBool(r, &c.Set.Private) },
		"comments_enabled": func(c *command, r json.RawMessage) error { return decodeBool(r, &c.Set.CommentsEnabled) },
		"bitrate_kbps":     decodeBitrate,
		"uplink_url": func(c *command, r json.RawMessage) error {
			var s string
			if err := decodeString(r, &s); err != nil {
				return err
			}
			if s != "" {
				if err := checkHTTPURL(s); err != nil {
					return err
				}
			}
			c.Set.UplinkURL = &s
			return nil
		},
		"uplink_token": func(c *command, r json.RawMessage) error {
			var s string
			if err := decodeString(r, &s); err != nil {
				return err
			}
			c.Set.UplinkToken = &s
			return nil
		},
		"uplink_enabled": func(c *command, r json.RawMessage) error { return decodeBool(r, &c.Set.UplinkEnabled) },
	},
	CmdOTA: {
		"url": func(c *command, r json.RawMessage) error {
			if err := decodeString(r, &c.OTA.URL); err != nil {
				return err
			}
			return checkHTTPURL(c.OTA.URL)
		},
		"version": func(c *command, r json.RawMessage) error { return decodeString(r, &c.OTA.Version) },
		"sha256": func(c *command, r json.RawMessage) error {
			if err := decodeString(r, &c.OTA.SHA256); err != nil {
				return err
			}
			if b, err := hex.DecodeString(c.OTA.SHA256); err != nil || len(b) != 32 {
				return errors.New("want 64 hex digits")
			}
			return nil
		},
		"downgrade": func(c *command, r json.RawMessage) error {
			var b *bool
			if err := decodeBool(r, &b); err != nil {
				return err
			}
			c.OTA.Downgrade = *b
			return nil
		},
	},
	CmdCommentRemove: {"comment": decodeTarget},
	CmdViewerBlock:   {"viewer": decodeTarget},
	CmdReplayDelete:  {"replay": decodeTarget},
}

// requiredFields lists the arguments a command cannot do without.
var requiredFields = map[string][]string{
	CmdOTA:           {"url"},
	CmdCommentRemove: {"comment"},
	CmdViewerBlock:   {"viewer"},
	CmdReplayDelete:  {"replay"},
}

// CommandNames lists every command this firmware understands, sorted.
func CommandNames() []string {
	names := make([]string, 0, len(commandFields))
	for n := range commandFields {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// parseCommand decodes the payload of the command named by the topic. It
// returns the correlation id whenever it can read one, also with an error, so
// that even a refused command is answered under its id.
func parseCommand(name string, payload []byte) (command, error) {
	c := command{Name: name}
	fields, known := commandFields[name]
	if len(payload) > maxCommandBytes {
		return c, fmt.Errorf("payload of %d bytes is too large (at most %d)", len(payload), maxCommandBytes)
	}
	payload = bytes.TrimSpace(payload)
	var args map[string]json.RawMessage
	if len(payload) > 0 { // an empty payload is an empty object: HA buttons may send nothing
		if !utf8.Valid(payload) {
			return c, errors.New("payload is not UTF-8 text")
		}
		if payload[0] != '{' {
			return c, errors.New("payload must be a JSON object, like {\"id\": \"1\"}")
		}
		if err := json.Unmarshal(payload, &args); err != nil {
			return c, fmt.Errorf("payload is not valid JSON: %w", err)
		}
	}
	if raw, ok := args["id"]; ok {
		delete(args, "id")
		if string(raw) != "null" {
			if err := json.Unmarshal(raw, &c.ID); err != nil {
				return c, errors.New(`"id" must be a string`)
			}
		}
	}
	if !known {
		return c, fmt.Errorf("unknown command %q (known: %s)", name, strings.Join(CommandNames(), ", "))
	}
	keys := make([]string, 0, len(args))
	for k := range args {
		keys = append(keys, k)
	}
	sort.Strings(keys) // the first bad argument reported is always the same one
	for _, k := range keys {
		decode, ok := fields[k]
		if !ok {
			return c, unknownArgument(name, k, fields)
		}
		if err := decode(&c, args[k]); err != nil {
			return c, fmt.Errorf("%s: argument %q: %w", name, k, err)
		}
	}
	for _, k := range requiredFields[name] {
		if _, ok := args[k]; !ok {
			return c, fmt.Errorf("%s: argument %q is required", name, k)
		}
	}
	if name == CmdSet && c.Set == (SetArgs{}) {
		return c, fmt.Errorf("set: no setting given (one or more of %s)", strings.Join(sortedKeys(fields), ", "))
	}
	return c, nil
}

func unknownArgument(name, arg string, fields map[string]field) error {
	if len(fields) == 0 {
		return fmt.Errorf("%s: unknown argument %q (%s takes none, only \"id\")", name, arg, name)
	}
	return fmt.Errorf("%s: unknown argument %q (known: id, %s)", name, arg, strings.Join(sortedKeys(fields), ", "))
}

func sortedKeys(fields map[string]field) []string {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func decodeString(raw json.RawMessage, into *string) error {
	if len(raw) == 0 || raw[0] != '"' {
		return errors.New("want a string")
	}
	if err := json.Unmarshal(raw, into); err != nil {
		return errors.New("want a string")
	}
	return nil
}

func decodeBool(raw json.RawMessage, into **bool) error {
	var b bool
	switch string(raw) {
	case "true":
		b = true
	case "false":
	default:
		return errors.New("want true or false")
	}
	*into = &b
	return nil
}

func decodeTitle(raw json.RawMessage, into **string) error {
	var s string
	if err := decodeString(raw, &s); err != nil {
		return err
	}
	if utf8.RuneCountInString(s) > maxTitleRunes {
		return fmt.Errorf("longer than %d characters", maxTitleRunes)
	}
	if strings.ContainsAny(s, "\x00\r\n") {
		return errors.New("must be one line of text")
	}
	*into = &s
	return nil
}

func decodeBitrate(c *command, raw json.RawMessage) error {
	var n json.Number
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&n); err != nil {
		return errors.New("want a whole number of kbit/s")
	}
	v, err := n.Int64()
	if err != nil {
		return errors.New("want a whole number of kbit/s")
	}
	if v < 100 || v > 50000 {
		return fmt.Errorf("%d is out of range (100 to 50000 kbit/s)", v)
	}
	kbps := int(v)
	c.Set.BitrateKbps = &kbps
	return nil
}

func decodeTarget(c *command, raw json.RawMessage) error {
	if err := decodeString(raw, &c.Target); err != nil {
		return err
	}
	if c.Target == "" {
		return errors.New("must not be empty")
	}
	return nil
}

func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http(s) URL", s)
	}
	return nil
}

// run carries the command out through the controller. A panic in the
// controller becomes an error reply rather than a dead daemon.
func (c command) run(ctx context.Context, ctl Controller) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("internal error while running %s: %v", c.Name, p)
		}
	}()
	switch c.Name {
	case CmdLive:
		return ctl.Live(ctx, c.Live)
	case CmdStop:
		return ctl.Stop(ctx)
	case CmdSet:
		return ctl.Set(ctx, c.Set)
	case CmdReboot:
		return ctl.Reboot(ctx)
	case CmdOTA:
		return ctl.OTA(ctx, c.OTA)
	case CmdCommentRemove:
		return ctl.CommentRemove(ctx, c.Target)
	case CmdViewerBlock:
		return ctl.ViewerBlock(ctx, c.Target)
	case CmdReplayDelete:
		return ctl.ReplayDelete(ctx, c.Target)
	}
	return fmt.Errorf("unknown command %q", c.Name)
}

// Reply is the answer to one command, published on <base>/<id>/reply.
type Reply struct {
	ID    string `json:"id"`
	Cmd   string `json:"cmd"`
	OK    bool   `json:"ok"`
	Error string `json:"error"`
}

// replyMemory remembers the replies of executed commands by correlation id,
// so that a repeated id (a broker redelivery, an operator's retry) is
// answered again instead of executed twice. It forgets after ttl and never
// holds more than max replies: the oldest go first.
type replyMemory struct {
	ttl   time.Duration
	max   int
	byID  map[string]remembered
	order []string // ids, oldest first
}

type remembered struct {
	reply Reply
	at    time.Time
}

func newReplyMemory(ttl time.Duration, max int) *replyMemory {
	return &replyMemory{ttl: ttl, max: max, byID: make(map[string]remembered)}
}

func (m *replyMemory) get(id string, now time.Time) (Reply, bool) {
	m.expire(now)
	r, ok := m.byID[id]
	return r.reply, ok
}

func (m *replyMemory) put(id string, r Reply, now time.Time) {
	m.expire(now)
	if _, ok := m.byID[id]; !ok {
		m.order = append(m.order, id)
	}
	m.byID[id] = remembered{reply: r, at: now}
	for len(m.order) > m.max {
		m.forgetOldest()
	}
}

func (m *replyMemory) expire(now time.Time) {
	for len(m.order) > 0 && now.Sub(m.byID[m.order[0]].at) >= m.ttl {
		m.forgetOldest()
	}
}

func (m *replyMemory) forgetOldest() {
	delete(m.byID, m.order[0])
	m.order[0] = ""
	m.order = m.order[1:]
	if cap(m.order) > 4*m.max && len(m.order) < m.max { // give back what slicing off the front keeps
		m.order = slices.Clone(m.order)
	}
}

func (m *replyMemory) len() int { return len(m.byID) }
