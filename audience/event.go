package audience

import (
	"encoding/json"
	"fmt"
	"time"
)

// EventType says what an Event is; it is the "type" of its JSON.
type EventType string

// The event types a Room emits.
const (
	// EventComment: {"type":"comment","id","viewer","name","text","ts","broadcaster"}.
	EventComment EventType = "comment"
	// EventCommentRemoved: {"type":"comment_removed","id"}.
	EventCommentRemoved EventType = "comment_removed"
	// EventHeart: {"type":"heart","count"}, count being the hearts of this
	// broadcast so far.
	EventHeart EventType = "heart"
	// EventCommentsEnabled: {"type":"comments_enabled","enabled"}.
	EventCommentsEnabled EventType = "comments_enabled"
	// EventReset: {"type":"reset","broadcast_id"}: a new broadcast began,
	// so a page clears its comments and sets its heart count to 0.
	EventReset EventType = "reset"
)

// Comment is one comment of the live chat. Its JSON is the comment event's
// without "type": {"id","viewer","name","text","ts","broadcaster"}, ts in
// RFC 3339 (UTC, seconds).
type Comment struct {
	ID string
	// ViewerID is the sender's viewer id; empty for the broadcaster.
	ViewerID string
	Name     string
	// Text is plain text (see Post for what is cleaned); it is never
	// HTML-escaped here.
	Text string
	// Time is the wall clock when it was posted, for display only.
	Time time.Time
	// Broadcaster marks the crew's comments. Pages must show this mark and
	// not trust names: a viewer may call themselves anything.
	Broadcaster bool

	inviteID string // the sender's invite, for Block; never sent to viewers
}

// commentJSON is the wire form of a comment; Type is left out of a plain
// Comment and set in the comment event.
type commentJSON struct {
	Type        EventType `json:"type,omitempty"`
	ID          string    `json:"id"`
	ViewerID    string    `json:"viewer"`
	Name        string    `json:"name"`
	Text        string    `json:"text"`
	Time        string    `json:"ts"`
	Broadcaster bool      `json:"broadcaster"`
}

func (c Comment) wire(t EventType) commentJSON {
	return commentJSON{Type: t, ID: c.ID, ViewerID: c.ViewerID, Name: c.Name, Text: c.Text,
		Time: c.Time.UTC().Format(time.RFC3339), Broadcaster: c.Broadcaster}
}

// MarshalJSON writes {"id","viewer","name","text","ts","broadcaster"}.
func (c Comment) MarshalJSON() ([]byte, error) { return json.Marshal(c.wire("")) }

// UnmarshalJSON reads what MarshalJSON writes (and ignores a "type").
func (c *Comment) UnmarshalJSON(data []byte) error {
	var w commentJSON
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	var t time.Time
	if w.Time != "" {
		var err error
		if t, err = time.Parse(time.RFC3339, w.Time); err != nil {
			return fmt.Errorf("comment ts: %w", err)
		}
	}
	*c = Comment{ID: w.ID, ViewerID: w.ViewerID, Name: w.Name, Text: w.Text, Time: t, Broadcaster: w.Broadcaster}
	return nil
}

// Event is one message of a Room to its subscribers, sent to pages as its
// JSON (see the EventType constants for each shape). Only the fields of its
// Type are meaningful.
type Event struct {
	Type EventType
	// Comment is the comment of EventComment.
	Comment Comment
	// CommentID is the removed comment of EventCommentRemoved.
	CommentID string
	// Count is the heart total of EventHeart.
	Count uint64
	// Enabled is the state of EventCommentsEnabled.
	Enabled bool
	// BroadcastID is the new broadcast of EventReset.
	BroadcastID string
}

// CommentEvent is the event that carries c.
func CommentEvent(c Comment) Event { return Event{Type: EventComment, Comment: c} }

// MarshalJSON writes exactly the fields of e's type, always all of them
// (a zero count or false is written, not left out).
func (e Event) MarshalJSON() ([]byte, error) {
	switch e.Type {
	case EventComment:
		return json.Marshal(e.Comment.wire(EventComment))
	case EventCommentRemoved:
		return json.Marshal(struct {
			Type EventType `json:"type"`
			ID   string    `json:"id"`
		}{e.Type, e.CommentID})
	case EventHeart:
		return json.Marshal(struct {
			Type  EventType `json:"type"`
			Count uint64    `json:"count"`
		}{e.Type, e.Count})
	case EventCommentsEnabled:
		return json.Marshal(struct {
			Type    EventType `json:"type"`
			Enabled bool      `json:"enabled"`
		}{e.Type, e.Enabled})
	case EventReset:
		return json.Marshal(struct {
			Type        EventType `json:"type"`
			BroadcastID string    `json:"broadcast_id"`
		}{e.Type, e.BroadcastID})
	}
	return nil, fmt.Errorf("audience: unknown event type %q", e.Type)
}

// UnmarshalJSON reads any of the shapes MarshalJSON writes, for clients and
// tests written in Go.
func (e *Event) UnmarshalJSON(data []byte) error {
	var w struct {
		Type        EventType `json:"type"`
		ID          string    `json:"id"`
		Count       uint64    `json:"count"`
		Enabled     bool      `json:"enabled"`
		BroadcastID string    `json:"broadcast_id"`
	}
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	switch w.Type {
	case EventComment:
		var c Comment
		if err := c.UnmarshalJSON(data); err != nil {
			return err
		}
		*e = Event{Type: w.Type, Comment: c}
	case EventCommentRemoved:
		*e = Event{Type: w.Type, CommentID: w.ID}
	case EventHeart:
		*e = Event{Type: w.Type, Count: w.Count}
	case EventCommentsEnabled:
		*e = Event{Type: w.Type, Enabled: w.Enabled}
	case EventReset:
		*e = Event{Type: w.Type, BroadcastID: w.BroadcastID}
	default:
		return fmt.Errorf("audience: unknown event type %q", w.Type)
	}
	return nil
}
