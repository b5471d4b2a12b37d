/** The task handlers, by task name. Created per engine: nothing registers itself on import. */
import type { Task } from '../config/schema.js'
import type { TaskHandler } from './tasks/task-handler.js'
import { TextEmbeddingTask } from './tasks/text-embedding.js'
import { TextGenerationTask } from './tasks/text-generation.js'
import { ImageClassificationTask } from './tasks/image-classification.js'
import { AudioTranscriptionTask } from './tasks/audio-transcription.js'
import { ZeroShotImageClassificationTask } from './tasks/zero-shot-image-classification.js'

export function createTaskRegistry (): Record<Task, TaskHandler> {
  return {
    text_embedding: new TextEmbeddingTask() as TaskHandler,
    text_generation: new TextGenerationTask() as TaskHandler,
    image_classification: new ImageClassificationTask() as TaskHandler,
    audio_transcription: new AudioTranscriptionTask() as TaskHandler,
    zero_shot_image_classification: new ZeroShotImageClassificationTask() as TaskHandler
  }
}
