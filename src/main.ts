/** Aurora's composition root: the live layer graph, launched until SIGINT/SIGTERM. */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Layer } from "effect"
import { MainLive } from "./layers/Live.js"
import { reportFailure } from "./layers/Startup.js"

NodeRuntime.runMain(reportFailure(Layer.launch(MainLive)), { disableErrorReporting: true, disablePrettyLogger: true })
