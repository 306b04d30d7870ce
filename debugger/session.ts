/**
 * The Debug Adapter Protocol session: the only code that knows DAP. It translates requests into
 * DebugRuntime calls and runtime results into events; nothing here computes anything about the model.
 *
 * Ids are deterministic so transcripts are stable: one thread (1), frame ids are 1 + the frame's
 * index from the top, and variable references restart at 1000 at every stop.
 */
import {
  DebugSession, Handles, InitializedEvent, OutputEvent, Scope, Source, StackFrame, StoppedEvent, TerminatedEvent, Thread,
} from '@vscode/debugadapter';
import { DebugProtocol } from '@vscode/debugprotocol';
import { ScalpelError } from '../engine/errors';
import { Launched, ScalpelLaunchArgs, launchRuntime } from './launch';
import { STOP_CONTEXT, StopContext, StopContextArguments } from './requests';
import { DebugRuntime, Frame, RunResult } from './runtime';
import type { VarNode } from './scopes';

const THREAD_ID = 1;
const LISTING_REFERENCE = 1;

type LaunchRequestArguments = DebugProtocol.LaunchRequestArguments & ScalpelLaunchArgs;

export class ScalpelDebugSession extends DebugSession {
  private launched: Launched | undefined;
  /** Aborted when the client ends the session, so a launch still tracing stops. */
  private readonly launching = new AbortController();
  private readonly variables = new Handles<() => VarNode[]>(1000);
  private configurationDone!: () => void;
  private readonly configured = new Promise<void>((resolve) => (this.configurationDone = resolve));

  constructor() {
    super();
    this.setDebuggerLinesStartAt1(true);
    this.setDebuggerColumnsStartAt1(true);
  }

  private get runtime(): DebugRuntime {
    if (!this.launched) throw new ScalpelError('the debug session has not launched');
    return this.launched.runtime;
  }

  protected override initializeRequest(response: DebugProtocol.InitializeResponse): void {
    response.body = {
      supportsConfigurationDoneRequest: true,
      supportsFunctionBreakpoints: true,
      supportsConditionalBreakpoints: true,
      supportsStepBack: true,
      supportsTerminateRequest: true,
      supportsEvaluateForHovers: false,
    };
    this.sendResponse(response);
  }

  protected override async launchRequest(response: DebugProtocol.LaunchResponse, args: LaunchRequestArguments): Promise<void> {
    try {
      this.launched = await launchRuntime(args, this.launching.signal);
    } catch (err) {
      this.fail(response, err, true);
      this.sendEvent(new TerminatedEvent());
      return;
    }
    for (const line of this.launched.summary) this.sendEvent(new OutputEvent(`${line}\n`, 'console'));
    this.sendEvent(new InitializedEvent());
    await this.configured;
    this.sendResponse(response);
    await this.report(() => this.runtime.start(!!args.stopOnEntry, !!args.stopOnDivergence));
  }

  protected override configurationDoneRequest(response: DebugProtocol.ConfigurationDoneResponse): void {
    this.sendResponse(response);
    this.configurationDone();
  }

  protected override setBreakPointsRequest(response: DebugProtocol.SetBreakpointsResponse, args: DebugProtocol.SetBreakpointsArguments): void {
    const results = this.runtime.setLineBreakpoints((args.breakpoints ?? []).map((b) => ({ line: b.line, condition: b.condition })));
    response.body = { breakpoints: results.map((r) => ({ verified: r.verified, line: r.line, message: r.message, source: this.listingSource() })) };
    this.sendResponse(response);
  }

  protected override setFunctionBreakPointsRequest(response: DebugProtocol.SetFunctionBreakpointsResponse, args: DebugProtocol.SetFunctionBreakpointsArguments): void {
    const results = this.runtime.setFunctionBreakpoints(args.breakpoints.map((b) => ({ name: b.name, condition: b.condition })));
    response.body = { breakpoints: results.map((r) => ({ verified: r.verified, line: r.line, message: r.message, source: r.line ? this.listingSource() : undefined })) };
    this.sendResponse(response);
  }

  protected override threadsRequest(response: DebugProtocol.ThreadsResponse): void {
    response.body = { threads: [new Thread(THREAD_ID, 'forward pass')] };
    this.sendResponse(response);
  }

  protected override sourceRequest(response: DebugProtocol.SourceResponse, args: DebugProtocol.SourceArguments): void {
    const ref = args.source?.sourceReference ?? args.sourceReference;
    if (ref !== LISTING_REFERENCE) return this.fail(response, new ScalpelError(`no source with reference ${ref}`));
    response.body = { content: this.runtime.listing, mimeType: 'text/plain' };
    this.sendResponse(response);
  }

  protected override stackTraceRequest(response: DebugProtocol.StackTraceResponse): void {
    const frames = this.runtime.frames();
    response.body = {
      stackFrames: frames.map((f) => {
        const sf = new StackFrame(f.index + 1, f.name, this.listingSource(), f.line, 1) as DebugProtocol.StackFrame;
        sf.presentationHint = f.point.kind === 'model' ? 'label' : 'normal';
        return sf;
      }),
      totalFrames: frames.length,
    };
    this.sendResponse(response);
  }

  protected override scopesRequest(response: DebugProtocol.ScopesResponse, args: DebugProtocol.ScopesArguments): void {
    const frame = this.frame(args.frameId);
    if (!frame) return this.fail(response, new ScalpelError(`no frame ${args.frameId} at this stop`));
    response.body = { scopes: this.runtime.scopes(frame).map((s) => new Scope(s.name, this.variables.create(s.variables), false)) };
    this.sendResponse(response);
  }

  protected override variablesRequest(response: DebugProtocol.VariablesResponse, args: DebugProtocol.VariablesArguments): void {
    const make = this.variables.get(args.variablesReference);
    if (!make) return this.fail(response, new ScalpelError(`no variables with reference ${args.variablesReference} at this stop`));
    try {
      response.body = {
        variables: make().map((v) => ({ name: v.name, value: v.value, variablesReference: v.children ? this.variables.create(v.children) : 0 })),
      };
      this.sendResponse(response);
    } catch (err) {
      this.fail(response, err);
    }
  }

  protected override async evaluateRequest(response: DebugProtocol.EvaluateResponse, args: DebugProtocol.EvaluateArguments): Promise<void> {
    try {
      const frame = args.frameId !== undefined ? this.frame(args.frameId) : undefined;
      response.body = { result: await this.runtime.evaluate(args.expression, frame), variablesReference: 0 };
      this.sendResponse(response);
    } catch (err) {
      this.fail(response, err);
    }
  }

  /** Scalpel's own requests (debugger/requests.ts); anything else is refused as the base class does. */
  protected override customRequest(command: string, response: DebugProtocol.Response, args: unknown): void {
    if (command !== STOP_CONTEXT) return super.customRequest(command, response, args);
    try {
      const frameId = (args as StopContextArguments | undefined)?.frameId;
      const frame = frameId !== undefined ? this.frame(frameId) : undefined;
      if (frameId !== undefined && !frame) throw new ScalpelError(`no frame ${frameId} at this stop`);
      const stop = this.runtime.stopContext(frame);
      const body: StopContext = { ...this.launched!.launched, ...stop };
      response.body = body;
      this.sendResponse(response);
    } catch (err) {
      this.fail(response, err);
    }
  }

  protected override continueRequest(response: DebugProtocol.ContinueResponse): void {
    response.body = { allThreadsContinued: true };
    this.sendResponse(response);
    void this.report(() => this.runtime.continue());
  }

  protected override nextRequest(response: DebugProtocol.NextResponse): void {
    this.sendResponse(response);
    void this.report(() => this.runtime.next());
  }

  protected override stepInRequest(response: DebugProtocol.StepInResponse): void {
    this.sendResponse(response);
    void this.report(() => this.runtime.stepIn());
  }

  protected override stepOutRequest(response: DebugProtocol.StepOutResponse): void {
    this.sendResponse(response);
    void this.report(() => this.runtime.stepOut());
  }

  protected override stepBackRequest(response: DebugProtocol.StepBackResponse): void {
    this.sendResponse(response);
    void this.report(() => this.runtime.stepBack());
  }

  protected override reverseContinueRequest(response: DebugProtocol.ReverseContinueResponse): void {
    this.sendResponse(response);
    void this.report(() => this.runtime.reverseContinue());
  }

  protected override async terminateRequest(response: DebugProtocol.TerminateResponse): Promise<void> {
    await this.release();
    this.sendResponse(response);
    this.sendEvent(new TerminatedEvent());
  }

  protected override async disconnectRequest(response: DebugProtocol.DisconnectResponse): Promise<void> {
    await this.release();
    this.sendResponse(response);
  }

  private async release(): Promise<void> {
    this.launching.abort();
    const l = this.launched;
    this.launched = undefined;
    await l?.release();
  }

  /** Runs a runtime movement and sends its stop (or the end of the session). */
  private async report(run: () => Promise<RunResult>): Promise<void> {
    let result: RunResult;
    try {
      result = await run();
    } catch (err) {
      this.sendEvent(new OutputEvent(`${err instanceof ScalpelError ? err.format() : String((err as Error)?.stack ?? err)}\n`, 'stderr'));
      return;
    }
    this.variables.reset();
    if (result.reason === 'terminated') {
      this.sendEvent(new TerminatedEvent());
      return;
    }
    // DAP has no "divergence" reason: it is a data-breakpoint-like stop.
    const reason = result.reason === 'divergence' ? 'data breakpoint' : result.reason;
    const event = new StoppedEvent(reason, THREAD_ID) as DebugProtocol.StoppedEvent;
    if (result.description) {
      event.body.description = result.description;
      event.body.text = result.description;
      this.sendEvent(new OutputEvent(`${result.point.key}: ${result.description}\n`, 'console'));
    }
    this.sendEvent(event);
  }

  private frame(frameId: number): Frame | undefined {
    return this.runtime.frames()[frameId - 1];
  }

  private listingSource(): Source {
    return new Source(`${this.runtime.opts.modelName}.model`, undefined, LISTING_REFERENCE, undefined, 'scalpel');
  }

  private fail(response: DebugProtocol.Response, err: unknown, showUser = false): void {
    if (!(err instanceof ScalpelError)) {
      // Not a user error: a bug; keep the stack where a developer can see it.
      this.sendEvent(new OutputEvent(`internal error: ${(err as Error)?.stack ?? err}\n`, 'stderr'));
    }
    const message = err instanceof ScalpelError ? err.format() : `internal error: ${(err as Error)?.message ?? err}`;
    // The message goes in as a variable so that braces in it are not read as placeholders; a leading
    // underscore marks it as free of personal data, so the response's `message` carries it too.
    this.sendErrorResponse(response, { id: 1, format: '{_message}', variables: { _message: message }, showUser });
  }
}
