//go:build onairprof

package main

import (
	"net/http"
	_ "net/http/pprof"
	"os"
)

func init() {
	if a := os.Getenv("ONAIR_PPROF"); a != "" {
		go http.ListenAndServe(a, nil)
	}
}
