package audience

import (
	"encoding/json"
	"testing"
	"time"
)

// The WebSocket sends events as they marshal: these are the contract.
func TestEventJSON(t *testing.T) {
	ts := time.Date(2025, 6, 1, 20, 30, 5, 123456789, time.FixedZone("CEST", 2*3600))
	tests := []struct {
		name  string
		event Event
		want  string
	}{
		{"comment", CommentEvent(Comment{ID: "c-1a2b3c4d-7", ViewerID: "v-9", Name: "Ada", Text: "<b>hi</b>\nthere", Time: ts}),
			`{"type":"comment","id":"c-1a2b3c4d-7","viewer":"v-9","name":"Ada","text":"\u003cb\u003ehi\u003c/b\u003e\nthere","ts":"2025-06-01T18:30:05Z","broadcaster":false}`},
		{"broadcaster's comment", CommentEvent(Comment{ID: "c-1a2b3c4d-8", Name: "Broadcaster", Text: "welcome", Time: ts, Broadcaster: true}),
			`{"type":"comment","id":"c-1a2b3c4d-8","viewer":"","name":"Broadcaster","text":"welcome","ts":"2025-06-01T18:30:05Z","broadcaster":true}`},
		{"comment_removed", Event{Type: EventCommentRemoved, CommentID: "c-1a2b3c4d-7"},
			`{"type":"comment_removed","id":"c-1a2b3c4d-7"}`},
		{"heart", Event{Type: EventHeart, Count: 42}, `{"type":"heart","count":42}`},
		{"no hearts yet", Event{Type: EventHeart}, `{"type":"heart","count":0}`},
		{"comments on", Event{Type: EventCommentsEnabled, Enabled: true}, `{"type":"comments_enabled","enabled":true}`},
		{"comments off", Event{Type: EventCommentsEnabled}, `{"type":"comments_enabled","enabled":false}`},
		{"reset", Event{Type: EventReset, BroadcastID: "20250601T183000Z-ab12cd34"},
			`{"type":"reset","broadcast_id":"20250601T183000Z-ab12cd34"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := json.Marshal(tc.event)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Fatalf("\n got %s\nwant %s", got, tc.want)
			}
			var back Event
			if err := json.Unmarshal(got, &back); err != nil {
				t.Fatal(err)
			}
			want := tc.event
			want.Comment.Time = want.Comment.Time.Truncate(time.Second)
			if tc.event.Type == EventComment && !back.Comment.Time.Equal(want.Comment.Time) {
				t.Fatalf("time %v, want %v", back.Comment.Time, want.Comment.Time)
			}
			back.Comment.Time, want.Comment.Time = time.Time{}, time.Time{}
			if back != want {
				t.Fatalf("round trip: %+v, want %+v", back, want)
			}
		})
	}
	if _, err := json.Marshal(Event{Type: "bogus"}); err == nil {
		t.Fatal("an unknown event type marshals")
	}
	if err := json.Unmarshal([]byte(`{"type":"bogus"}`), new(Event)); err == nil {
		t.Fatal("an unknown event type unmarshals")
	}
}

func TestCommentJSONHidesTheInvite(t *testing.T) {
	c := Comment{ID: "c-1", ViewerID: "v", Name: "n", Text: "t", Time: time.Unix(0, 0), inviteID: "secret-invite"}
	got, _ := json.Marshal(c)
	want := `{"id":"c-1","viewer":"v","name":"n","text":"t","ts":"1970-01-01T00:00:00Z","broadcaster":false}`
	if string(got) != want {
		t.Fatalf("\n got %s\nwant %s", got, want)
	}
}
