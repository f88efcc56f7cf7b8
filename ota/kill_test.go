package ota_test

const childEnv = "ONAIR_OTA_KILL_CHILD"

func killChildMain() int { return 0 }
