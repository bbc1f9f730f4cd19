import { z } from 'zod'
import { CategoriesSchema, DateTimeTzSchema, RegardingSchema, field } from './common.js'

export const TaskFieldsSchema = z.strictObject({
  subject: field(z.string().max(2000)),
  description: field(z.string().max(1024 * 1024)),
  due: field(DateTimeTzSchema),
  start: field(DateTimeTzSchema),
  /** Reminder time (Graph `reminderDateTime`). */
  reminder: field(DateTimeTzSchema),
  /** When the task was completed (Graph `completedDateTime`, Dataverse `actualend`). */
  completedOn: field(DateTimeTzSchema),
  status: field(z.enum(['notStarted', 'inProgress', 'completed', 'waitingOnOthers', 'deferred'])),
  priority: field(z.enum(['low', 'normal', 'high'])),
  percentComplete: field(z.number().int().min(0).max(100)),
  categories: field(CategoriesSchema),
  regarding: field(RegardingSchema),
})
export type TaskFields = z.infer<typeof TaskFieldsSchema>
